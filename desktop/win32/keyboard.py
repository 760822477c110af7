"""Typing on Windows with ``SendInput`` (pure: builds the INPUT array; the seam sends it).

Why not pynput's typing: it sends letters as real virtual-key events, which an IME
(Microsoft Pinyin, Sogou, Korean) composes, Caps Lock upper-cases, a held Ctrl turns into
shortcuts and a dead-key layout combines. Here every UTF-16 code unit of the text goes as
one ``KEYEVENTF_UNICODE`` down/up pair (``wVk`` 0, ``wScan`` the code unit; a character
outside the BMP is two units, its surrogate pair), so the target receives ``VK_PACKET``
keystrokes that ``TranslateMessage`` turns into exactly those ``WM_CHAR`` s, whatever the
layout. The whole text is one ``SendInput`` array: Windows inserts it serially, not
interleaved with the user's own keys.

Paste chords are built from virtual-key codes (``VK_CONTROL`` + ``0x56``), never from
characters: under a Russian or Greek layout there is no "v" character key, and a chord
built from a character becomes ``Ctrl+VK_PACKET``, which pastes nothing.

Before typing or pasting, :class:`SendInputKeySender` waits (bounded) until the user
holds no modifier (``GetAsyncKeyState``): ``SendInput`` does not reset the keyboard state,
so a held Ctrl (e.g. the next utterance's hold key) would turn typed text into shortcuts
and Ctrl+V into Ctrl+Shift+V. If one stays held it raises :class:`ModifiersHeld`.

The INPUT layout (:func:`pack_inputs`), from winuser.h: ``INPUT { DWORD type; union {
MOUSEINPUT mi; KEYBDINPUT ki; HARDWAREINPUT hi; } }`` with ``KEYBDINPUT { WORD wVk; WORD
wScan; DWORD dwFlags; DWORD time; ULONG_PTR dwExtraInfo; }``. The union is as large as
MOUSEINPUT (24 bytes + ULONG_PTR), so ``sizeof(INPUT)`` is 40 on 64-bit Windows (the
union at offset 8) and 28 on 32-bit (offset 4). docs/windows.md cites the sources.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from desktop.hotkey.keys import KeySpec
from desktop.output.base import InjectionGuard, OutputError
from desktop.output.text_sink import is_clean

log = logging.getLogger(__name__)

INPUT_KEYBOARD = 1
KEYEVENTF_EXTENDEDKEY = 0x0001
KEYEVENTF_KEYUP = 0x0002
KEYEVENTF_UNICODE = 0x0004
KEYEVENTF_SCANCODE = 0x0008

VK_SHIFT = 0x10
VK_CONTROL = 0x11
VK_MENU = 0x12  # Alt
VK_LWIN = 0x5B
VK_RWIN = 0x5C
VK_LSHIFT, VK_RSHIFT = 0xA0, 0xA1
VK_LCONTROL, VK_RCONTROL = 0xA2, 0xA3
VK_LMENU, VK_RMENU = 0xA4, 0xA5

#: Every modifier whose state is checked before typing (side-less and sided codes).
MODIFIER_VKS: tuple[int, ...] = (
    VK_SHIFT,
    VK_CONTROL,
    VK_MENU,
    VK_LWIN,
    VK_RWIN,
    VK_LSHIFT,
    VK_RSHIFT,
    VK_LCONTROL,
    VK_RCONTROL,
    VK_LMENU,
    VK_RMENU,
)

#: Chord modifier names (desktop.hotkey.keys) → virtual-key codes, pressed in this order.
CHORD_MODIFIER_VKS: tuple[tuple[str, int], ...] = (
    ("ctrl", VK_CONTROL),
    ("alt", VK_MENU),
    ("shift", VK_SHIFT),
    ("cmd", VK_LWIN),
)

#: Named trigger keys a paste chord may use → (virtual-key code, extended key).
NAMED_VKS: dict[str, tuple[int, bool]] = {
    "insert": (0x2D, True),  # the navigation-cluster Insert, not numpad 0
    "delete": (0x2E, True),
    "home": (0x24, True),
    "end": (0x23, True),
    "page_up": (0x21, True),
    "page_down": (0x22, True),
    "space": (0x20, False),
    "f10": (0x79, False),
}

#: dwExtraInfo of every event tingxie injects, so its own hook can tell them apart
#: (ASCII "TXZI").
TINGXIE_EXTRA_INFO = 0x54585A49

#: GetAsyncKeyState's result has this bit set while the key is down.
KEY_DOWN_BIT = 0x8000


@dataclass(frozen=True)
class KeyInput:
    """One KEYBDINPUT: ``vk`` (0 with KEYEVENTF_UNICODE), ``scan`` (the UTF-16 unit with
    KEYEVENTF_UNICODE), ``flags`` (KEYEVENTF_*)."""

    vk: int
    scan: int
    flags: int
    extra: int = TINGXIE_EXTRA_INFO


def utf16_units(text: str) -> list[int]:
    """The UTF-16 code units of ``text`` (a character above U+FFFF is a surrogate pair)."""
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def unicode_inputs(text: str) -> tuple[KeyInput, ...]:
    """A down/up KEYEVENTF_UNICODE pair per UTF-16 code unit of ``text``.

    ``text`` must have passed the text sink (no controls, no line breaks): a control sent
    this way still arrives as that character (a CR would be Enter in many programs)."""
    if not is_clean(text):
        raise ValueError("unicode_inputs needs text from the text sink")
    inputs: list[KeyInput] = []
    for unit in utf16_units(text):
        inputs.append(KeyInput(0, unit, KEYEVENTF_UNICODE))
        inputs.append(KeyInput(0, unit, KEYEVENTF_UNICODE | KEYEVENTF_KEYUP))
    return tuple(inputs)


def trigger_vk(key: str) -> tuple[int, bool]:
    """(virtual-key code, extended) of a chord's trigger key: letters and digits by their
    VK code (``"v"`` → 0x56, the same on every layout), named keys, ``vkNN``."""
    if len(key) == 1 and key.isascii() and key.isalnum():
        return ord(key.upper()), False
    if key in NAMED_VKS:
        return NAMED_VKS[key]
    if key.startswith("vk") and key[2:].isdigit():
        return int(key[2:]), False
    raise OutputError(f"no virtual-key code for {key!r} in a paste chord")


def chord_inputs(chord: KeySpec, scan_of: Callable[[int], int]) -> tuple[KeyInput, ...]:
    """Modifiers down, trigger down and up, modifiers up (reverse order), all by VK code.
    ``scan_of`` gives each key's scan code for the current layout (MapVirtualKeyW)."""
    mods = [vk for name, vk in CHORD_MODIFIER_VKS if name in chord.modifiers]
    vk, extended = trigger_vk(chord.key)
    ext = KEYEVENTF_EXTENDEDKEY if extended else 0
    down = [KeyInput(m, scan_of(m), 0) for m in mods]
    up = [KeyInput(m, scan_of(m), KEYEVENTF_KEYUP) for m in reversed(mods)]
    return (
        *down,
        KeyInput(vk, scan_of(vk), ext),
        KeyInput(vk, scan_of(vk), ext | KEYEVENTF_KEYUP),
        *up,
    )


def input_size(pointer_size: int = 8) -> int:
    """``sizeof(INPUT)``: 40 on 64-bit Windows, 28 on 32-bit."""
    if pointer_size == 8:
        return 40
    if pointer_size == 4:
        return 28
    raise ValueError(f"pointer size {pointer_size}")


def pack_inputs(inputs: Iterable[KeyInput], pointer_size: int = 8) -> bytes:
    """The INPUT array as Windows lays it out in memory (little endian)."""
    size = input_size(pointer_size)
    ptr = "Q" if pointer_size == 8 else "I"
    # type, padding to the union's alignment, then KEYBDINPUT; the rest of the union zero
    head = "<I4x" if pointer_size == 8 else "<I"
    ki = f"HHII{'4x' if pointer_size == 8 else ''}{ptr}"
    fmt = head + ki
    pad = size - struct.calcsize(fmt)
    out = bytearray()
    for i in inputs:
        out += struct.pack(fmt, INPUT_KEYBOARD, i.vk, i.scan, i.flags, 0, i.extra)
        out += bytes(pad)
    return bytes(out)


class KeyboardApi(Protocol):
    """The Win32 keyboard calls (desktop.win32.api on Windows, a fake in tests)."""

    pointer_size: int

    def send_input(self, packed: bytes, count: int, size: int) -> int:
        """SendInput(count, packed, size): the number of events inserted."""
        ...

    def async_key_state(self, vk: int) -> int: ...

    def scan_code(self, vk: int) -> int:
        """MapVirtualKeyW(vk, MAPVK_VK_TO_VSC)."""
        ...


class ModifiersHeld(OutputError):
    """A modifier stayed held past the wait: typing now would make shortcuts."""


def held_modifiers(api: KeyboardApi) -> tuple[int, ...]:
    return tuple(vk for vk in MODIFIER_VKS if api.async_key_state(vk) & KEY_DOWN_BIT)


def wait_modifiers_released(
    api: KeyboardApi,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = 0.01,
) -> tuple[int, ...]:
    """Poll until no modifier is down or ``timeout_s`` passed; the ones still held."""
    deadline = clock() + timeout_s
    while True:
        held = held_modifiers(api)
        if not held or clock() >= deadline:
            return held
        sleep(poll_s)


class SendInputKeySender:
    """:class:`~desktop.output.keystrokes.KeySender` over SendInput (Windows).

    ``modifier_wait_s``: how long to wait for the user to release modifiers before
    giving up with :class:`ModifiersHeld`. All sends are inside ``guard``.
    """

    def __init__(
        self,
        api: KeyboardApi,
        guard: InjectionGuard | None = None,
        *,
        modifier_wait_s: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self.guard = guard or InjectionGuard()
        self.modifier_wait_s = modifier_wait_s
        self._clock = clock
        self._sleep = sleep

    def _wait_modifiers(self) -> None:
        held = wait_modifiers_released(
            self.api, self.modifier_wait_s, clock=self._clock, sleep=self._sleep
        )
        if held:
            names = ", ".join(f"0x{vk:02X}" for vk in held)
            raise ModifiersHeld(f"modifier keys still held after {self.modifier_wait_s} s: {names}")

    def _send(self, inputs: Sequence[KeyInput]) -> None:
        size = input_size(self.api.pointer_size)
        packed = pack_inputs(inputs, self.api.pointer_size)
        with self.guard:
            sent = self.api.send_input(packed, len(inputs), size)
        if sent != len(inputs):
            # 0: blocked by another thread (or UIPI, which Windows does not report)
            raise OutputError(f"SendInput inserted {sent} of {len(inputs)} key events")

    def type(self, text: str) -> None:
        if not text:
            return
        inputs = unicode_inputs(text)
        self._wait_modifiers()
        self._send(inputs)

    def tap_chord(self, chord: KeySpec) -> None:
        inputs = chord_inputs(chord, self.api.scan_code)
        self._wait_modifiers()
        self._send(inputs)
