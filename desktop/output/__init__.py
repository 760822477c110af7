"""Typing the final text into the focused window.

``policy`` (pure) chooses keystrokes or clipboard paste per text and application and
joins consecutive utterances; ``keystrokes`` and ``clipboard`` are the two outputs;
``focus`` says which window has focus (X11, Windows); ``typist`` ties them together.
Nothing here imports Qt or pynput at import time.
"""
