"""Synthetic key events through pynput: typing text and pressing chords (Ctrl+V).

pynput is imported lazily, on first use: on Linux ``import pynput`` without a usable
``DISPLAY`` raises ImportError, and importing this module must not need a display.

On X11 pynput types a character with an event for the key that carries it in the keyboard
map. A character the map lacks (CJK, most non-Latin text) it types by writing it on a
spare keycode, four per keycode, the last two in the second group with Mode_switch; XKB
applications (Qt, GTK) read those in the first group, so every third character of CJK text
came out as the one before it (``今天下午`` → ``今天天午``). :class:`X11KeyBorrower` types
such characters instead: each on a spare keycode of its own, in the first group only,
with XTest; pynput keeps the characters the map has. On Windows
:class:`desktop.win32.keyboard.SendInputKeySender` replaces pynput's sender: every UTF-16
unit as a ``KEYEVENTF_UNICODE`` event, chords by virtual-key code.

XTest events combine with the modifiers the user holds (a held Ctrl makes shortcuts of
typed letters), so :class:`PynputKeySender` first waits, bounded, until none is held when
it is given a :class:`~desktop.output.modifiers.ModifierWait` (:mod:`desktop.output.modifiers`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from desktop.hotkey.keys import KeySpec
from desktop.output.base import InjectionGuard, OutputError, OutputTarget
from desktop.output.modifiers import ModifierWait
from desktop.output.text_sink import sanitize
from desktop.output.x11_keyboard import PerDisplay, close_quietly

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
    modifier stays held, and nothing is sent. ``borrower`` (X11) types the characters the
    keyboard map lacks; without it pynput types them its own way, garbled in XKB
    applications.
    """

    def __init__(
        self,
        guard: InjectionGuard | None = None,
        char_delay_s: float = 0.0,
        modifier_wait: ModifierWait | None = None,
        borrower: X11KeyBorrower | None = None,
    ) -> None:
        self.guard = guard or InjectionGuard()
        self.char_delay_s = char_delay_s
        self.modifier_wait = modifier_wait
        self.borrower = borrower
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
            runs = [(text, False)] if self.borrower is None else self.borrower.split(text)
            try:
                for run, borrowed in runs:
                    send = (
                        self.borrower.type
                        if borrowed and self.borrower is not None
                        else controller.type
                    )
                    if self.char_delay_s <= 0:
                        send(run)
                    else:
                        for ch in run:
                            send(ch)
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


#: Keysyms of Unicode characters outside Latin-1: 0x01000000 + the code point (X11).
_UNICODE_KEYSYM = 0x01000000


def char_keysym(ch: str) -> int | None:
    """The X keysym that types ``ch``: the code point for printable Latin-1, 0x01000000 +
    the code point above it; None for control characters (pynput types those as keys)."""
    cp = ord(ch)
    if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF:
        return cp
    if cp < 0xA0:
        return None
    return _UNICODE_KEYSYM | cp


class X11KeyBorrower:
    """Types the characters the X keyboard map lacks, with XTest, on spare keycodes.

    A spare keycode (no keysym at all; the highest first, least likely a real key) is
    given the character's keysym in both levels of the first group, so any shift state
    types it, and keeps it: a character typed again needs no new mapping. When every
    spare keycode is taken, the one used longest ago is mapped anew, but not within
    ``remap_gap_s`` of its last mapping: an application updates its copy of the map when
    it handles the server's mapping notice, by asking the server, and one that asks after
    the keycode has changed again reads the earlier key with the later character.
    ``max_keycodes`` caps how many spare keycodes it takes (None: all).

    :meth:`split` says which characters it types (those missing from the map's first
    group, where pynput would borrow a keycode its own way, and those it mapped itself);
    :meth:`type` types them. One X connection, opened on first use. Thread-safe.
    """

    def __init__(
        self,
        display: str | None = None,
        remap_gap_s: float = 0.1,
        max_keycodes: int | None = None,
    ) -> None:
        self._name = display
        self.remap_gap_s = remap_gap_s
        self.max_keycodes = max_keycodes
        self._display: Any = None
        self._lock = threading.Lock()
        #: keysym -> keycode we mapped it on
        self._mapped: dict[int, int] = {}
        #: keycode -> (when mapped, when last typed), monotonic
        self._slots: dict[int, tuple[float, float]] = {}
        self._first_group: set[int] = set()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _open(self) -> Any:
        if self._display is None:
            from Xlib import display as xdisplay  # type: ignore[import-untyped,unused-ignore]

            d = xdisplay.Display(self._name)
            if not d.has_extension("XTEST"):
                d.close()
                raise OutputError("the X server has no XTEST extension")
            self._display = d
        return self._display

    @contextmanager
    def _x_errors(self) -> Iterator[Any]:
        """The connection, under the lock; an X failure drops it (the next call opens a
        new one) and becomes an :class:`OutputError`."""
        with self._lock:
            try:
                yield self._open()
            except OutputError:
                raise
            except Exception as e:
                self._drop()
                raise OutputError(f"typing on a spare keycode failed: {e!r}") from e

    def _drop(self) -> None:
        if self._display is not None:
            close_quietly(self._display)
            self._display = None

    def split(self, text: str) -> list[tuple[str, bool]]:
        """``text`` in runs: (run, True) for the characters this borrower types, (run,
        False) for pynput's. Reads the keyboard map from the server (one round trip)."""
        with self._x_errors() as d:
            self._refresh(d)
            runs: list[tuple[str, bool]] = []
            for ch in text:
                keysym = char_keysym(ch)
                ours = keysym is not None and (
                    keysym in self._mapped or keysym not in self._first_group
                )
                if runs and runs[-1][1] == ours:
                    runs[-1] = (runs[-1][0] + ch, ours)
                else:
                    runs.append((ch, ours))
            return runs

    def _refresh(self, d: Any) -> None:
        """The keyboard map fresh from the server: what its first group types, which
        keycodes are spare, and which of our mappings survived (a layout switch replaces
        the whole map)."""
        first, last = d.display.info.min_keycode, d.display.info.max_keycode
        rows = d.get_keyboard_mapping(first, last - first + 1)
        self._first_group = {int(k) for row in rows for k in list(row)[:2] if k}
        for keysym, keycode in list(self._mapped.items()):
            if list(rows[keycode - first])[:2] != [keysym, keysym]:
                del self._mapped[keysym]
        ours = set(self._mapped.values())
        for i, row in enumerate(rows):
            keycode = first + i
            syms = [int(k) for k in row]
            if _borrowed_row(syms) and keycode not in ours:
                # mapped as we map them, by an earlier borrower or run of the app: the
                # keycodes would otherwise stay taken for good
                self._mapped.setdefault(syms[0], keycode)
                ours.add(keycode)
            if keycode in ours or not any(syms):
                self._slots.setdefault(keycode, (-math.inf, -math.inf))
            else:  # taken by someone else since
                self._slots.pop(keycode, None)
        if self.max_keycodes is not None:
            for keycode in sorted(self._slots)[: -self.max_keycodes or None]:
                self._slots.pop(keycode)
            self._mapped = {k: c for k, c in self._mapped.items() if c in self._slots}

    def type(self, text: str) -> None:
        """Types ``text`` (characters :meth:`split` gave this borrower) with XTest."""
        from Xlib import X  # type: ignore[import-untyped,unused-ignore]
        from Xlib.ext import xtest  # type: ignore[import-untyped,unused-ignore]

        with self._x_errors() as d:
            for ch in text:
                keysym = char_keysym(ch)
                if keysym is None:
                    raise OutputError(f"cannot type character {ch!r} on a spare keycode")
                keycode = self._keycode_for(d, keysym)
                xtest.fake_input(d, X.KeyPress, keycode)
                xtest.fake_input(d, X.KeyRelease, keycode)
                mapped_at, _ = self._slots[keycode]
                self._slots[keycode] = (mapped_at, time.monotonic())
            d.sync()

    def _keycode_for(self, d: Any, keysym: int) -> int:
        keycode = self._mapped.get(keysym)
        if keycode is not None:
            return keycode
        if not self._slots:
            raise OutputError("no spare keycode in the X keyboard map to type with")
        keycode = min(self._slots, key=lambda k: (self._slots[k][1], -k))
        mapped_at, _ = self._slots[keycode]
        wait = mapped_at + self.remap_gap_s - time.monotonic()
        if wait > 0:
            log.debug(
                "keycode %d mapped %.0f ms ago: waiting before its next",
                keycode,
                (self.remap_gap_s - wait) * 1000,
            )
            d.sync()  # the keys before it reach the server first
            time.sleep(wait)
        for old, code in list(self._mapped.items()):
            if code == keycode:
                del self._mapped[old]
        # both levels of the first group: Shift or Caps Lock cannot change the character
        d.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self._mapped[keysym] = keycode
        self._slots[keycode] = (time.monotonic(), time.monotonic())
        return keycode


def _borrowed_row(syms: list[int]) -> bool:
    """A keyboard-map row as :class:`X11KeyBorrower` writes it: one Unicode character
    above Latin-1 on both levels of the first group, nothing else (XKB may repeat it in
    the second group)."""
    return (
        len(syms) >= 2
        and syms[0] == syms[1]
        and syms[0] >= _UNICODE_KEYSYM | 0x100
        and set(syms) <= {0, syms[0]}
    )


_borrowers: PerDisplay[X11KeyBorrower] = PerDisplay(X11KeyBorrower)


def shared_borrower(display: str | None = None) -> X11KeyBorrower:
    """One borrower per display for the whole process: the app rebuilds its typist when
    the settings change, and the keycodes mapped so far stay ours."""
    return _borrowers.get(display)


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
