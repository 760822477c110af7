"""Typing the final text into the focused window.

``text_sink`` (pure) makes every text safe to type or paste (visible text only, no Enter,
a length cap); ``policy`` (pure) chooses keystrokes or clipboard paste per text and
application and joins consecutive utterances; ``keystrokes`` and ``clipboard`` are the
two outputs; ``focus`` says which window has focus (X11, Windows); ``typist`` ties them
together. The Windows implementations (SendInput, the Win32 clipboard, the elevation
check) live in :mod:`desktop.win32`. Nothing here imports Qt or pynput at import time.
"""
