"""Raw Input keyboard records decoded byte for byte; key names by virtual key; AltGr."""

from __future__ import annotations

import pytest

from desktop.win32.rawinput import (
    TINGXIE_EXTRA_INFO,
    AltGrFilter,
    KeyEvent,
    RawKey,
    decode_raw_input,
    encode_raw_input,
    header_size,
    key_name,
    vk_of,
)

# RAWINPUT on x64: RAWINPUTHEADER {DWORD dwType; DWORD dwSize; HANDLE hDevice; WPARAM wParam}
# then RAWKEYBOARD {USHORT MakeCode, Flags, Reserved, VKey; UINT Message; ULONG ExtraInformation}
RIGHT_CTRL_DOWN_X64 = bytes.fromhex(
    "01000000"  # dwType RIM_TYPEKEYBOARD
    "28000000"  # dwSize 40
    "3412000000000000"  # hDevice 0x1234
    "0100000000000000"  # wParam RIM_INPUTSINK
    "1d00"  # MakeCode 0x1D (Ctrl)
    "0200"  # Flags RI_KEY_E0 (make)
    "0000"  # Reserved
    "1100"  # VKey VK_CONTROL
    "00010000"  # Message WM_KEYDOWN
    "00000000"  # ExtraInformation
)

RIGHT_CTRL_UP_X86 = bytes.fromhex(
    "01000000"
    "20000000"
    "34120000"
    "01000000"  # 4-byte HANDLE and WPARAM
    "1d00"
    "0300"
    "0000"
    "1100"
    "01010000"
    "00000000"  # Flags E0|BREAK, WM_KEYUP
)


def test_right_ctrl_down_x64_byte_for_byte() -> None:
    key = decode_raw_input(RIGHT_CTRL_DOWN_X64, pointer_size=8)
    assert key == RawKey(
        vk=0x11, make_code=0x1D, down=True, e0=True, e1=False, device=0x1234, extra=0
    )
    assert key.name == "ctrl_r"
    assert not key.ours


def test_right_ctrl_up_x86_byte_for_byte() -> None:
    key = decode_raw_input(RIGHT_CTRL_UP_X86, pointer_size=4)
    assert key is not None
    assert (key.name, key.down, key.device) == ("ctrl_r", False, 0x1234)


def test_header_sizes() -> None:
    assert header_size(8) == 24
    assert header_size(4) == 16
    assert len(RIGHT_CTRL_DOWN_X64) == header_size(8) + 16


def test_encode_is_the_inverse_of_decode() -> None:
    key = RawKey(0x78, 0x43, False, False, False, 0, TINGXIE_EXTRA_INFO)  # F9 up, ours
    for size in (4, 8):
        data = encode_raw_input(key, size)
        assert decode_raw_input(data, size) == key
    # the x64 encoding differs from the hand-written record only in the fields set
    assert encode_raw_input(decode_raw_input(RIGHT_CTRL_DOWN_X64) or key, 8, 0x100)[
        :8
    ] == bytes.fromhex("0100000028000000")


def test_ours_is_told_apart_by_extra_information() -> None:
    ours = RawKey(0x56, 0x2F, True, False, False, 0, TINGXIE_EXTRA_INFO)
    theirs = RawKey(0x56, 0x2F, True, False, False, 0, 0)
    assert ours.ours and not theirs.ours


@pytest.mark.parametrize(
    "data",
    [
        b"",
        RIGHT_CTRL_DOWN_X64[:-1],  # truncated
        b"\x00\x00\x00\x00" + RIGHT_CTRL_DOWN_X64[4:],  # RIM_TYPEMOUSE
        RIGHT_CTRL_DOWN_X64[:24] + b"\xff\x00" + RIGHT_CTRL_DOWN_X64[26:],  # overrun
        RIGHT_CTRL_DOWN_X64[:30] + b"\xff\x00" + RIGHT_CTRL_DOWN_X64[32:],  # VKey 0xFF
    ],
)
def test_records_that_are_not_keys(data: bytes) -> None:
    assert decode_raw_input(data) is None


def test_bad_pointer_size() -> None:
    with pytest.raises(ValueError):
        decode_raw_input(RIGHT_CTRL_DOWN_X64, pointer_size=2)


@pytest.mark.parametrize(
    ("vk", "make", "e0", "name"),
    [
        (0x11, 0x1D, False, "ctrl_l"),
        (0x11, 0x1D, True, "ctrl_r"),
        (0x12, 0x38, False, "alt_l"),
        (0x12, 0x38, True, "alt_r"),  # Right Alt = AltGr
        (0x10, 0x2A, False, "shift_l"),
        (0x10, 0x36, False, "shift_r"),  # right Shift: only its scan code differs
        (0x5B, 0x5B, True, "cmd_l"),
        (0x5C, 0x5C, True, "cmd_r"),
        (0x78, 0x43, False, "f9"),
        (0x87, 0x76, False, "f24"),
        (0x2D, 0x52, True, "insert"),
        (0x5D, 0x5D, True, "menu"),
        (0x13, 0x45, False, "pause"),
        (0x91, 0x46, False, "scroll_lock"),
        (0x41, 0x1E, False, "a"),
        (0x39, 0x0A, False, "9"),
        (0x20, 0x39, False, "space"),
        (0xBA, 0x27, False, "vk186"),  # OEM_1: named by its VK, not by the layout's char
    ],
)
def test_key_names(vk: int, make: int, e0: bool, name: str) -> None:
    assert key_name(vk, make, e0) == name


@pytest.mark.parametrize(
    ("name", "vk"),
    [
        ("ctrl_r", 0xA3),
        ("ctrl_l", 0xA2),
        ("alt_r", 0xA5),
        ("alt_gr", 0xA5),
        ("shift_r", 0xA1),
        ("f9", 0x78),
        ("insert", 0x2D),
        ("a", 0x41),
        ("7", 0x37),
        ("vk186", 186),
        ("ctrl", 0x11),
    ],
)
def test_virtual_key_of_a_name(name: str, vk: int) -> None:
    assert vk_of(name) == vk


def test_names_round_trip_through_their_virtual_key() -> None:
    for vk in [*range(0x30, 0x3A), *range(0x41, 0x5B), *range(0x70, 0x88), 0x2D, 0x5D, 0xBA]:
        name = key_name(vk)
        assert name is not None
        assert vk_of(name) == vk
    assert vk_of("no_such_key") is None
    assert vk_of("+") is None


def ev(name: str, down: bool, t: float) -> KeyEvent:
    return KeyEvent(name, down, t)


def feed_all(f: AltGrFilter, events: list[KeyEvent]) -> list[tuple[str, bool]]:
    return [(e.name, e.down) for event in events for e in f.feed(event)]


def test_altgr_fake_ctrl_is_released_before_right_alt_and_dropped_after() -> None:
    f = AltGrFilter(window_s=0.05)
    got = feed_all(
        f,
        [
            ev("ctrl_l", True, 1.000),  # fake
            ev("alt_r", True, 1.001),
            ev("ctrl_l", True, 1.500),  # auto-repeat of both while AltGr is held
            ev("alt_r", True, 1.501),
            ev("ctrl_l", False, 2.000),
            ev("alt_r", False, 2.001),
            ev("ctrl_l", True, 3.0),  # a real left Ctrl afterwards counts again
            ev("ctrl_l", False, 3.2),
        ],
    )
    assert got == [
        ("ctrl_l", True),
        ("ctrl_l", False),
        ("alt_r", True),
        ("alt_r", True),
        ("alt_r", False),
        ("ctrl_l", True),
        ("ctrl_l", False),
    ]


def test_real_left_ctrl_then_right_alt_later_is_kept() -> None:
    f = AltGrFilter(window_s=0.05)
    got = feed_all(f, [ev("ctrl_l", True, 1.0), ev("alt_r", True, 1.3), ev("alt_r", False, 1.4)])
    assert got == [("ctrl_l", True), ("alt_r", True), ("alt_r", False)]


def test_right_alt_without_fake_ctrl_passes() -> None:
    f = AltGrFilter()
    got = feed_all(f, [ev("alt_r", True, 1.0), ev("alt_r", False, 1.4), ev("ctrl_l", True, 2)])
    assert got == [("alt_r", True), ("alt_r", False), ("ctrl_l", True)]
