"""SendInput typing on Windows, through the seam (pure: fake Win32, fake clock).

The INPUT array is checked byte for byte against the documented x64 layout: INPUT is 40
bytes, ``type`` at 0, the KEYBDINPUT union member at 8 (wVk 8, wScan 10, dwFlags 12, time
16, dwExtraInfo 24), the rest of the union (MOUSEINPUT is larger) zero.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from desktop.hotkey.keys import parse_key_spec
from desktop.output.base import InjectionGuard, OutputError
from desktop.output.text_sink import sanitize
from desktop.win32.keyboard import (
    KEYEVENTF_EXTENDEDKEY,
    KEYEVENTF_KEYUP,
    KEYEVENTF_UNICODE,
    TINGXIE_EXTRA_INFO,
    VK_CONTROL,
    VK_RCONTROL,
    VK_SHIFT,
    KeyInput,
    ModifiersHeld,
    SendInputKeySender,
    chord_inputs,
    input_size,
    pack_inputs,
    unicode_inputs,
    utf16_units,
)
from tests.win32.fake_output import FakeWin32Output

U, UP = KEYEVENTF_UNICODE, KEYEVENTF_UNICODE | KEYEVENTF_KEYUP
# Hypothesis writes .hypothesis/ under the working directory: not into the tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "tingxie-hypothesis")


def sender(fake: FakeWin32Output, **kw: float) -> SendInputKeySender:
    return SendInputKeySender(fake, InjectionGuard(), clock=fake.clock, sleep=fake.sleep, **kw)


def test_input_sizes() -> None:
    assert input_size(8) == 40 and input_size(4) == 28
    with pytest.raises(ValueError):
        input_size(2)


def test_pack_is_the_documented_x64_layout_byte_for_byte() -> None:
    packed = pack_inputs([KeyInput(0, 0x4F60, U), KeyInput(0x56, 0x2F, KEYEVENTF_KEYUP, 7)])
    expected = (
        # INPUT 0: type=1, pad, wVk=0, wScan=0x4F60, dwFlags=4, time=0, pad, extra, zeros
        bytes([1, 0, 0, 0, 0, 0, 0, 0])
        + bytes([0x00, 0x00, 0x60, 0x4F, 0x04, 0, 0, 0])
        + bytes([0, 0, 0, 0, 0, 0, 0, 0])
        + struct.pack("<Q", TINGXIE_EXTRA_INFO)
        + bytes(8)
        # INPUT 1: wVk=0x56, wScan=0x2F, KEYUP, extra=7
        + bytes([1, 0, 0, 0, 0, 0, 0, 0])
        + bytes([0x56, 0x00, 0x2F, 0x00, 0x02, 0, 0, 0])
        + bytes(8)
        + struct.pack("<Q", 7)
        + bytes(8)
    )
    assert packed == expected and len(packed) == 80


def test_pack_x86_layout() -> None:
    packed = pack_inputs([KeyInput(0x11, 0x1D, 0, 9)], pointer_size=4)
    assert packed == struct.pack("<IHHIII", 1, 0x11, 0x1D, 0, 0, 9) + bytes(8)
    assert len(packed) == 28


def test_unicode_inputs_one_down_up_pair_per_utf16_unit() -> None:
    text = "a你😀"  # U+1F600 is the surrogate pair D83D DE00
    assert utf16_units(text) == [0x61, 0x4F60, 0xD83D, 0xDE00]
    assert unicode_inputs(text) == (
        KeyInput(0, 0x61, U),
        KeyInput(0, 0x61, UP),
        KeyInput(0, 0x4F60, U),
        KeyInput(0, 0x4F60, UP),
        KeyInput(0, 0xD83D, U),
        KeyInput(0, 0xD83D, UP),
        KeyInput(0, 0xDE00, U),
        KeyInput(0, 0xDE00, UP),
    )


def test_unicode_inputs_refuse_unsanitized_text() -> None:
    for bad in ("a\nb", "\x1b[201~", "x\u202e", "\t"):
        with pytest.raises(ValueError):
            unicode_inputs(bad)


def test_typing_is_one_batched_send_input_with_every_unit() -> None:
    fake = FakeWin32Output()
    text = "Hello 你好 😀 ÄÖ"
    sender(fake).type(text)
    assert [c for c in fake.calls if c[0] == "SendInput"] == [("SendInput", 2 * 13 + 2, 40)]
    assert fake.typed_text() == text
    batch = fake.sent[0]
    assert all(i.type == 1 and i.vk == 0 and i.extra == TINGXIE_EXTRA_INFO for i in batch)
    assert [i.flags for i in batch[:4]] == [U, UP, U, UP]


def test_paste_chords_are_virtual_key_codes_not_characters() -> None:
    fake = FakeWin32Output()
    # a non-Latin layout: scan codes come from the layout; 'V' is still VK 0x56
    fake.scan_codes = {VK_CONTROL: 0x1D, VK_SHIFT: 0x2A, 0x56: 0x2F}
    s = sender(fake)
    s.tap_chord(parse_key_spec("ctrl+v"))
    s.tap_chord(parse_key_spec("ctrl+shift+v"))
    s.tap_chord(parse_key_spec("shift+insert"))
    ctrl_v, ctrl_shift_v, shift_ins = fake.sent
    assert [(i.vk, i.scan, i.flags) for i in ctrl_v] == [
        (0x11, 0x1D, 0),
        (0x56, 0x2F, 0),
        (0x56, 0x2F, KEYEVENTF_KEYUP),
        (0x11, 0x1D, KEYEVENTF_KEYUP),
    ]
    assert [(i.vk, i.flags) for i in ctrl_shift_v] == [
        (0x11, 0),
        (0x10, 0),
        (0x56, 0),
        (0x56, KEYEVENTF_KEYUP),
        (0x10, KEYEVENTF_KEYUP),
        (0x11, KEYEVENTF_KEYUP),
    ]
    assert [(i.vk, i.flags) for i in shift_ins] == [
        (0x10, 0),
        (0x2D, KEYEVENTF_EXTENDEDKEY),
        (0x2D, KEYEVENTF_EXTENDEDKEY | KEYEVENTF_KEYUP),
        (0x10, KEYEVENTF_KEYUP),
    ]
    assert not any(i.flags & KEYEVENTF_UNICODE for batch in fake.sent for i in batch)


def test_chord_without_a_vk_code_is_an_error() -> None:
    with pytest.raises(OutputError):
        chord_inputs(parse_key_spec("ctrl+ö"), lambda vk: 0)


def test_waits_until_a_held_modifier_is_released() -> None:
    fake = FakeWin32Output()
    fake.hold(VK_RCONTROL, until=fake.now + 0.3)  # the next utterance's hold key
    sender(fake, modifier_wait_s=1.5).type("ok")
    first_send = fake.names().index("SendInput")
    assert fake.now >= 100.3  # it waited ...
    assert ("GetAsyncKeyState", VK_RCONTROL) in fake.calls[:first_send]
    assert fake.typed_text() == "ok"  # ... and then typed
    # after the release, one full poll of every modifier found none held
    polls = fake.calls[first_send - 11 : first_send]
    assert all(c[0] == "GetAsyncKeyState" for c in polls)


def test_a_modifier_held_too_long_types_nothing() -> None:
    fake = FakeWin32Output()
    fake.hold(VK_SHIFT, until=fake.now + 60)
    s = sender(fake, modifier_wait_s=0.5)
    with pytest.raises(ModifiersHeld):
        s.type("text")
    assert 100.5 <= fake.now < 100.6  # bounded wait
    with pytest.raises(ModifiersHeld):
        s.tap_chord(parse_key_spec("ctrl+v"))
    assert fake.sent == []


def test_partial_insert_is_an_error() -> None:
    fake = FakeWin32Output()
    fake.insert_limit = 0  # input blocked by another thread
    with pytest.raises(OutputError, match="inserted 0 of 4"):
        sender(fake).type("ab")


def test_guard_is_active_during_send_input() -> None:
    fake = FakeWin32Output()
    guard = InjectionGuard(tail_s=0.0)
    seen: list[bool] = []
    original = fake.send_input

    def send_input(packed: bytes, count: int, size: int) -> int:
        seen.append(guard.active())
        return original(packed, count, size)

    fake.send_input = send_input  # type: ignore[method-assign]
    SendInputKeySender(fake, guard, clock=fake.clock, sleep=fake.sleep).type("x")
    assert seen == [True]


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(alphabet=st.characters(codec=None, min_codepoint=0), max_size=80))
def test_property_sanitized_text_round_trips_through_the_input_array(text: str) -> None:
    """Whatever the final, what the target would receive as WM_CHAR is the sanitized
    text, every character, in order, with no Enter or other control."""
    clean = sanitize(text).text
    fake = FakeWin32Output()
    sender(fake).type(clean)
    assert fake.typed_text() == clean
    assert all(i.vk == 0 and i.flags in (U, UP) for batch in fake.sent for i in batch)
