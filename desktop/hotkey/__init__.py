"""The global push-to-talk / toggle hotkeys.

``keys`` (pure) parses and formats key specs and documents the default key; ``debounce``
(pure) turns raw press/release events into PRESS/RELEASE/TAP/CANCEL; ``router`` (pure)
matches keys to bindings and captures keys for the settings dialog; ``listener`` runs them
on pynput's global keyboard listener (X11, macOS) or a key backend (Raw Input on Windows,
desktop/win32/shell.py).
"""
