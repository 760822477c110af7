"""Synthetic key events through pynput: typing text and pressing chords (Ctrl+V).

pynput is imported lazily, on first use: on Linux ``import pynput`` without a usable
``DISPLAY`` raises ImportError, and importing this module must not need a display.

On X11 pynput injects with XTest. Characters missing from the keyboard map are typed by
temporarily remapping a spare keycode, which applications read late: multi-character CJK
text gets garbled (testing.md). The policy sends such text to the clipboard instead. On
Windows :class:`desktop.win32.keyboard.SendInputKeySender` replaces pynput's sender: every
UTF-16 unit as a ``KEYEVENTF_UNICODE`` event, chords by virtual-key code.

XTest events combine with the modifiers the user holds (a held Ctrl makes shortcuts of
typed letters), so :class:`PynputKeySender` first waits, bounded, until none is held when
it is given a :class:`~desktop.output.modifiers.ModifierWait` (:mod:`desktop.output.modifiers`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from desktop.hotkey.keys import KeySpec
from desktop.output.base import InjectionGuard, OutputError, OutputTarget
from desktop.output.modifiers import ModifierWait
from desktop.output.text_sink import sanitize

log = logging.getLogger(__name__)


class KeySender(Protocol):
    """Sends synthetic key events to the focused window."""

    def type(self, text: str) -> None: ...

    def tap_chord(self, chord: KeySpec) -> None: ...


class PynputKeySender:
    """:class:`KeySender` over ``pynput.keyboard.Controller`` (created on first use).

    ``char_delay_s`` pauses between characters (0: as fast as pynput goes). All sends are
    inside ``guard`` so the hotkey listener ignores them. ``modifier_wait``, if given, runs
    before each text and chord, outside the guard (the listener must still see the user's
    keys meanwhile); it raises :class:`~desktop.output.modifiers.ModifiersHeld` when a
    modifier stays held, and nothing is sent.
    """

    def __init__(
        self,
        guard: InjectionGuard | None = None,
        char_delay_s: float = 0.0,
        modifier_wait: ModifierWait | None = None,
    ) -> None:
        self.guard = guard or InjectionGuard()
        self.char_delay_s = char_delay_s
        self.modifier_wait = modifier_wait
        self._controller: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._controller is None:
            try:
                from pynput import keyboard  # type: ignore[import-untyped,unused-ignore]
            except ImportError as e:  # no DISPLAY / unsupported platform
                raise OutputError(f"pynput cannot inject keys here: {e}") from e
            self._controller = keyboard.Controller()
        return self._controller

    def _wait_modifiers(self) -> None:
        if self.modifier_wait is not None:
            self.modifier_wait()

    def type(self, text: str) -> None:
        with self._lock:
            self._wait_modifiers()
            self._type(text)

    def _type(self, text: str) -> None:
        with self.guard:
            controller = self._get()
            try:
                if self.char_delay_s <= 0:
                    controller.type(text)
                else:
                    for ch in text:
                        controller.type(ch)
                        time.sleep(self.char_delay_s)
            except controller.InvalidCharacterException as e:
                raise OutputError(f"cannot type character {e.args!r}") from e

    def tap_chord(self, chord: KeySpec) -> None:
        with self._lock:
            self._wait_modifiers()
            self._tap_chord(chord)

    def _tap_chord(self, chord: KeySpec) -> None:
        with self.guard:
            controller = self._get()
            mods = [pynput_key(m) for m in ("ctrl", "alt", "shift", "cmd") if m in chord.modifiers]
            key = pynput_key(chord.key)
            pressed: list[Any] = []
            try:
                for m in mods:
                    controller.press(m)
                    pressed.append(m)
                controller.press(key)
                controller.release(key)
            finally:
                for m in reversed(pressed):
                    controller.release(m)


def pynput_key(name: str) -> Any:
    """A pynput key for a canonical key name (``"ctrl"`` → ``Key.ctrl``, ``"v"`` → ``'v'``)."""
    from pynput.keyboard import Key, KeyCode  # type: ignore[import-untyped,unused-ignore]

    if len(name) == 1:
        return KeyCode.from_char(name)
    if name.startswith("vk") and name[2:].isdigit():
        return KeyCode.from_vk(int(name[2:]))
    try:
        return Key[name]
    except KeyError:
        raise OutputError(f"pynput has no key {name!r} on this platform") from None


class KeystrokeOutput:
    """Types text as key events. Does not touch the clipboard.

    The text passes the text sink again (no cap) whoever calls: a newline must never be
    pressed as Enter, even by a caller that skipped the typist."""

    name = "keystrokes"

    def __init__(self, sender: KeySender | None = None) -> None:
        self.sender = sender if sender is not None else PynputKeySender()

    def type_text(
        self, text: str, paste_chord: str | None = None, target: OutputTarget | None = None
    ) -> None:
        text = sanitize(text, max_chars=None).text
        if text:
            self.sender.type(text)
