"""Raw Input keyboard records → key events with canonical names (pure, no ctypes).

The Windows hotkey listener registers for Raw Input (``RegisterRawInputDevices`` with
``RIDEV_INPUTSINK``) and receives one ``WM_INPUT`` per key transition; ``GetRawInputData``
copies a ``RAWINPUT`` record out. :func:`decode_raw_input` reads that record byte for byte
(``RAWINPUTHEADER`` then ``RAWKEYBOARD``; the header's handle fields are pointer-sized, so
the layout depends on the process's bitness) and names the key the way settings name keys
(:mod:`desktop.hotkey.keys`), from the virtual-key code plus the E0 prefix and the scan
code, because Raw Input reports both Ctrl keys as ``VK_CONTROL`` and both Alt keys as
``VK_MENU``: the right-hand ones carry the E0 flag. Shift keys differ only in scan code
(0x2A left, 0x36 right).

Raw Input has no "injected" flag (the low-level hook's ``LLKHF_INJECTED``). Our own typed
keys are told apart in two ways: the typist's ``SendInput`` records carry
:data:`TINGXIE_EXTRA_INFO` in ``dwExtraInfo``, which reaches ``RAWKEYBOARD.ExtraInformation``
(:attr:`RawKey.ours`), and while the typist types, presses with no source device
(``hDevice == 0``, as synthesized input arrives) are dropped by the listener's guard.

:class:`AltGrFilter` removes the left Ctrl that AltGr keyboard layouts send with Right Alt,
so that a Right Alt (AltGr) hold key is seen alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# The dwExtraInfo our SendInput records carry (the typist's INPUT builder writes it), seen
# again in RAWKEYBOARD.ExtraInformation: the listener never takes such a key for the user's.
from desktop.win32.keyboard import TINGXIE_EXTRA_INFO

# RAWINPUTHEADER.dwType and RAWKEYBOARD.Flags (winuser.h)
RIM_TYPEKEYBOARD = 1
RI_KEY_BREAK = 0x1
RI_KEY_E0 = 0x2
RI_KEY_E1 = 0x4
KEYBOARD_OVERRUN_MAKE_CODE = 0xFF


# Virtual-key codes (winuser.h) the decoder needs by name.
VK_SHIFT = 0x10
VK_CONTROL = 0x11
VK_MENU = 0x12
VK_LSHIFT = 0xA0
VK_RSHIFT = 0xA1
VK_LCONTROL = 0xA2
VK_RCONTROL = 0xA3
VK_LMENU = 0xA4
VK_RMENU = 0xA5
VK_LWIN = 0x5B
VK_RWIN = 0x5C

SCAN_RIGHT_SHIFT = 0x36

#: Named virtual keys → canonical names (desktop/hotkey/keys.py NAMED_KEYS).
_VK_NAMES: dict[int, str] = {
    0x08: "backspace",
    0x09: "tab",
    0x0D: "enter",
    0x13: "pause",
    0x14: "caps_lock",
    0x1B: "esc",
    0x20: "space",
    0x21: "page_up",
    0x22: "page_down",
    0x23: "end",
    0x24: "home",
    0x25: "left",
    0x26: "up",
    0x27: "right",
    0x28: "down",
    0x2C: "print_screen",
    0x2D: "insert",
    0x2E: "delete",
    0x5D: "menu",  # VK_APPS
    0x90: "num_lock",
    0x91: "scroll_lock",
    0xAD: "media_volume_mute",
    0xAE: "media_volume_down",
    0xAF: "media_volume_up",
    0xB0: "media_next",
    0xB1: "media_previous",
    0xB3: "media_play_pause",
    VK_LSHIFT: "shift_l",
    VK_RSHIFT: "shift_r",
    VK_LCONTROL: "ctrl_l",
    VK_RCONTROL: "ctrl_r",
    VK_LMENU: "alt_l",
    VK_RMENU: "alt_r",
    VK_LWIN: "cmd_l",
    VK_RWIN: "cmd_r",
    **{0x70 + i: f"f{i + 1}" for i in range(24)},  # VK_F1..VK_F24
}

#: Canonical names → the virtual key ``GetAsyncKeyState`` and ``RegisterHotKey`` take.
_NAME_VKS: dict[str, int] = {name: vk for vk, name in _VK_NAMES.items()}
_NAME_VKS.update({"alt_gr": VK_RMENU, "ctrl": VK_CONTROL, "alt": VK_MENU, "shift": VK_SHIFT})


@dataclass(frozen=True)
class RawKey:
    """One key transition from a ``RAWKEYBOARD`` record."""

    vk: int
    make_code: int
    down: bool
    e0: bool
    e1: bool
    device: int  # RAWINPUTHEADER.hDevice: 0 for synthesized input
    extra: int  # RAWKEYBOARD.ExtraInformation (dwExtraInfo of SendInput)

    @property
    def name(self) -> str | None:
        """Canonical key name (``"ctrl_r"``, ``"f9"``, ``"a"``, ``"vk255"``), or None."""
        return key_name(self.vk, self.make_code, self.e0)

    @property
    def ours(self) -> bool:
        """Typed by tingxie itself (our SendInput marker)."""
        return self.extra == TINGXIE_EXTRA_INFO


def header_size(pointer_size: int) -> int:
    """``sizeof(RAWINPUTHEADER)``: two DWORDs, a HANDLE and a WPARAM (24 on x64, 16 on x86)."""
    return 8 + 2 * pointer_size


#: RAWKEYBOARD: USHORT MakeCode, Flags, Reserved, VKey; UINT Message; ULONG ExtraInformation.
_KEYBOARD = struct.Struct("<HHHHII")


def decode_raw_input(data: bytes, pointer_size: int = 8) -> RawKey | None:
    """The key event in a ``RAWINPUT`` record, or None (not a keyboard, overrun, no VK)."""
    if pointer_size not in (4, 8):
        raise ValueError(f"pointer size must be 4 or 8, not {pointer_size}")
    head = struct.Struct("<II" + ("QQ" if pointer_size == 8 else "II"))
    if len(data) < head.size + _KEYBOARD.size:
        return None
    kind, _size, device, _wparam = head.unpack_from(data, 0)
    if kind != RIM_TYPEKEYBOARD:
        return None
    make, flags, _reserved, vk, _message, extra = _KEYBOARD.unpack_from(data, head.size)
    # winuser.h's own WM_INPUT example skips overruns and keys with no legacy VK
    if make == KEYBOARD_OVERRUN_MAKE_CODE or vk == 0 or vk >= 0xFF:
        return None
    return RawKey(
        vk=vk,
        make_code=make,
        down=not flags & RI_KEY_BREAK,
        e0=bool(flags & RI_KEY_E0),
        e1=bool(flags & RI_KEY_E1),
        device=int(device),
        extra=extra,
    )


def encode_raw_input(key: RawKey, pointer_size: int = 8, message: int = 0) -> bytes:
    """The ``RAWINPUT`` bytes of ``key`` (what GetRawInputData writes; for fakes and tests)."""
    flags = (0 if key.down else RI_KEY_BREAK) | (RI_KEY_E0 if key.e0 else 0)
    flags |= RI_KEY_E1 if key.e1 else 0
    body = _KEYBOARD.pack(key.make_code, flags, 0, key.vk, message, key.extra)
    fmt = "<II" + ("QQ" if pointer_size == 8 else "II")
    size = header_size(pointer_size) + len(body)
    return struct.pack(fmt, RIM_TYPEKEYBOARD, size, key.device, 0) + body


def key_name(vk: int, make_code: int = 0, e0: bool = False) -> str | None:
    """Canonical name of a virtual key as Raw Input reports it (sided modifiers resolved)."""
    if vk == VK_CONTROL:
        return "ctrl_r" if e0 else "ctrl_l"
    if vk == VK_MENU:
        return "alt_r" if e0 else "alt_l"
    if vk == VK_SHIFT:
        return "shift_r" if make_code == SCAN_RIGHT_SHIFT else "shift_l"
    if 0x30 <= vk <= 0x39 or 0x41 <= vk <= 0x5A:  # '0'-'9', 'A'-'Z': the VK is the character
        return chr(vk).lower()
    if vk in _VK_NAMES:
        return _VK_NAMES[vk]
    if 0 < vk < 0xFF:
        return f"vk{vk}"  # a key without a name (OEM punctuation...): stable on one layout
    return None


def vk_of(name: str) -> int | None:
    """The virtual key of a canonical key name (``"ctrl_r"`` → VK_RCONTROL), or None."""
    if name in _NAME_VKS:
        return _NAME_VKS[name]
    if len(name) == 1 and ("0" <= name <= "9" or "a" <= name <= "z"):
        return ord(name.upper())
    if name.startswith("vk") and name[2:].isdigit() and 0 < int(name[2:]) < 0xFF:
        return int(name[2:])
    return None


@dataclass(frozen=True)
class KeyEvent:
    """A named key transition at time ``t`` (seconds); ``synthetic``: no source device."""

    name: str
    down: bool
    t: float
    synthetic: bool = False


class AltGrFilter:
    """Drops the left Ctrl that AltGr layouts send together with Right Alt.

    On a layout with AltGr (German, French, Polish...) Windows turns a Right Alt press into
    left Ctrl + Right Alt. When a left Ctrl press is followed, within ``window_s`` and with
    nothing in between, by a Right Alt press, the Ctrl was that fake one: a release of it
    is emitted before the Right Alt (so a hold on Right Alt sees no modifier held, and a
    left-Ctrl binding only saw a tap), and left Ctrl events are dropped until the fake
    Ctrl's own release (Chromium's remoting code watches for the same pair). Not
    thread-safe: one thread feeds it.
    """

    def __init__(self, window_s: float = 0.05) -> None:
        self.window_s = window_s
        self._last: KeyEvent | None = None
        self._fake_ctrl = False  # a fake left Ctrl is down (its release still to come)
        self._altgr_down = False

    def feed(self, event: KeyEvent) -> list[KeyEvent]:
        prev, self._last = self._last, event
        if event.name == "alt_r":
            if event.down and not self._altgr_down:
                self._altgr_down = True
                if (
                    prev is not None
                    and prev.name == "ctrl_l"
                    and prev.down
                    and event.t - prev.t <= self.window_s
                ):
                    self._fake_ctrl = True
                    return [KeyEvent("ctrl_l", False, event.t, prev.synthetic), event]
            elif not event.down:
                self._altgr_down = False
            return [event]
        if event.name == "ctrl_l" and self._fake_ctrl:
            if not event.down:
                self._fake_ctrl = False  # the fake Ctrl's own release: already emitted
            return []  # the fake Ctrl's repeats (AltGr held) and its release
        return [event]
