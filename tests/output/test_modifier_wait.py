"""The wait for held modifier keys before typing (pure: fake clock, fake keyboard).

The real X11 keyboard is read in test_x11_modifiers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from desktop.hotkey.keys import parse_key_spec
from desktop.output.base import InjectionGuard, OutputMethod, TextOutput
from desktop.output.keystrokes import PynputKeySender
from desktop.output.modifiers import (
    ModifiersHeld,
    ModifierWait,
    held_modifiers,
    modifier_keycodes,
    pressed_keycodes,
    wait_until_released,
)
from desktop.output.policy import OutputPolicy
from desktop.output.typist import Typist
from tests.output.test_typist_units import EDITOR, FakeClipboard, FakeFocus, RecordingOutput


@dataclass
class FakeTime:
    """A clock that only ``sleep`` moves."""

    t: float = 50.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s > 0
        self.sleeps.append(s)
        self.t += s


@dataclass
class Keyboard:
    """Keys held until ``release_at`` on the fake clock (None: held for ever)."""

    time: FakeTime
    keys: tuple[str, ...] = ("Control_R",)
    release_at: float | None = None
    reads: int = 0

    def held(self) -> tuple[str, ...]:
        self.reads += 1
        if self.release_at is not None and self.time.t >= self.release_at:
            return ()
        return self.keys


@dataclass
class GuardWatchingKeyboard(Keyboard):
    """Records, at each read, whether the injection guard was active."""

    guard: InjectionGuard = field(default_factory=InjectionGuard)
    guard_seen: list[bool] = field(default_factory=list)

    def held(self) -> tuple[str, ...]:
        self.guard_seen.append(self.guard.active())
        return super().held()


def test_nothing_held_returns_at_once() -> None:
    time = FakeTime()
    keyboard = Keyboard(time, keys=())
    assert wait_until_released(keyboard.held, 1.5, clock=time.clock, sleep=time.sleep) == ()
    assert keyboard.reads == 1 and time.sleeps == []


def test_waits_until_the_key_is_released() -> None:
    time = FakeTime()
    keyboard = Keyboard(time, release_at=50.3)
    held = wait_until_released(keyboard.held, 1.5, clock=time.clock, sleep=time.sleep)
    assert held == ()
    assert 50.3 <= time.t < 50.3 + 0.011  # polled every 10 ms, stopped at the release
    assert max(time.sleeps) <= 0.01


def test_gives_up_at_the_deadline_with_what_is_still_held() -> None:
    time = FakeTime()
    keyboard = Keyboard(time, keys=("Control_L", "Shift_L"))
    held = wait_until_released(keyboard.held, 0.5, clock=time.clock, sleep=time.sleep)
    assert held == ("Control_L", "Shift_L")
    assert time.t == pytest.approx(50.5)  # never sleeps past the deadline
    # a release exactly at the deadline still counts: read once more there
    time2 = FakeTime()
    keyboard2 = Keyboard(time2, release_at=50.5)
    assert wait_until_released(keyboard2.held, 0.5, clock=time2.clock, sleep=time2.sleep) == ()


def test_modifier_wait_raises_with_the_keys_and_measures_the_wait() -> None:
    time = FakeTime()
    wait = ModifierWait(Keyboard(time), timeout_s=1.5, clock=time.clock, sleep=time.sleep)
    with pytest.raises(ModifiersHeld, match=r"held after 1.5 s: Control_R") as e:
        wait()
    assert e.value.held == ("Control_R",)
    assert wait.waited_s == pytest.approx(1.5)
    released = ModifierWait(
        Keyboard(time, release_at=time.t + 0.2), clock=time.clock, sleep=time.sleep
    )
    released()
    assert released.waited_s == pytest.approx(0.2, abs=0.011)


# --- decoding the X server's replies ----------------------------------------------------

#: GetModifierMapping as Xvfb's default map answers it: Shift, Lock, Control, Mod1..Mod5.
XVFB_MAPPING = [
    [50, 62, 0, 0],
    [66, 0, 0, 0],
    [37, 105, 0, 0],
    [64, 108, 205, 0],
    [77, 0, 0, 0],
    [0, 0, 0, 0],
    [133, 134, 206, 207],
    [92, 203, 0, 0],
]
XVFB_KEYSYMS = {
    50: 0xFFE1,
    62: 0xFFE2,
    66: 0xFFE5,
    37: 0xFFE3,
    105: 0xFFE4,
    64: 0xFFE9,
    108: 0xFE03,
    205: 0xFFE7,
    77: 0xFF7F,
    133: 0xFFEB,
    134: 0xFFEC,
    206: 0xFFED,
    207: 0xFFED,
    92: 0xFE03,
    203: 0xFF7E,
}


def keymap(*keycodes: int) -> list[int]:
    out = [0] * 32
    for k in keycodes:
        out[k // 8] |= 1 << (k % 8)
    return out


def test_modifier_keycodes_leave_out_the_lock_keys() -> None:
    codes = modifier_keycodes(XVFB_MAPPING, lambda k: XVFB_KEYSYMS.get(k, 0))
    assert 66 not in codes  # Caps Lock (the Lock row)
    assert 77 not in codes  # Num Lock on Mod2
    assert 0 not in codes  # unused slots
    assert codes[37] == "Control_L" and codes[105] == "Control_R"
    assert codes[50] == "Shift_L" and codes[64] == "Alt_L" and codes[108] == "ISO_Level3_Shift"
    assert codes[133] == "Super_L" and codes[203] == "Mode_switch"
    # a lock key on an ordinary row is still left out; an unknown keysym is named by code
    odd = modifier_keycodes([[0], [], [9, 10]], {9: 0xFFE5, 10: 0x1234}.__getitem__)
    assert odd == {10: "keycode 10"}


def test_keymap_bits_decode_to_keycodes() -> None:
    assert pressed_keycodes(keymap()) == frozenset()
    assert pressed_keycodes(keymap(8, 37, 255)) == {8, 37, 255}
    raw = [0] * 32
    raw[4] = 0b0010_0000  # byte 4, bit 5: keycode 37
    assert pressed_keycodes(raw) == {37}


def test_held_modifiers_ignores_other_keys_and_locks() -> None:
    codes = modifier_keycodes(XVFB_MAPPING, lambda k: XVFB_KEYSYMS.get(k, 0))
    assert held_modifiers(keymap(38, 39, 66, 77), codes) == ()  # letters, Caps, Num Lock
    assert held_modifiers(keymap(105, 38, 50), codes) == ("Shift_L", "Control_R")


# --- where the wait runs ----------------------------------------------------------------


def test_the_typist_waits_outside_the_injection_guard_then_types() -> None:
    """On X11 the hotkey listener drops every key press while the guard is active: the
    key the user holds (the next utterance's hold key) must still count during the wait."""
    time = FakeTime()
    guard = InjectionGuard(clock=time.clock)
    keyboard = GuardWatchingKeyboard(time, release_at=time.t + 0.4, guard=guard)
    wait = ModifierWait(keyboard, clock=time.clock, sleep=time.sleep)
    log: list[tuple[str, str, str | None]] = []
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: RecordingOutput("keys", log)
    }
    typist = Typist(
        OutputPolicy(),
        outputs,
        FakeFocus(EDITOR),
        guard=guard,
        clock=time.clock,
        modifier_wait=wait,
    )
    result = typist.type_final("hello")
    assert result.ok and log == [("keys", "hello", "ctrl+v")]
    assert len(keyboard.guard_seen) > 30 and not any(keyboard.guard_seen)
    assert result.seconds == pytest.approx(0.4, abs=0.011)


def test_a_modifier_held_too_long_leaves_the_text_on_the_clipboard() -> None:
    time = FakeTime()
    wait = ModifierWait(Keyboard(time), clock=time.clock, sleep=time.sleep)
    log: list[tuple[str, str, str | None]] = []
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: RecordingOutput("keys", log)
    }
    cb = FakeClipboard()
    typist = Typist(OutputPolicy(), outputs, FakeFocus(EDITOR), fallback=cb, modifier_wait=wait)
    result = typist.type_final("hello\nworld")
    assert log == []  # nothing typed
    assert not result.ok and result.left_on_clipboard and cb.content.text == "hello world"
    assert result.notice is not None and result.notice.startswith(
        "A modifier key (Control_R) stayed held; the text is on the clipboard."
    )
    assert result.error is not None and "ModifiersHeld" in result.error


@pytest.mark.parametrize("send", ["type", "chord"])
def test_the_key_sender_sends_nothing_while_a_modifier_stays_held(send: str) -> None:
    """The sender's own wait, for callers other than the typist (the paste output's chord
    comes after the clipboard was set): it raises before pynput is even loaded and
    before the guard is entered."""
    time = FakeTime()
    guard = InjectionGuard(clock=time.clock)
    sender = PynputKeySender(
        guard,
        modifier_wait=ModifierWait(
            Keyboard(time), timeout_s=0.3, clock=time.clock, sleep=time.sleep
        ),
    )
    with pytest.raises(ModifiersHeld):
        if send == "type":
            sender.type("abc")
        else:
            sender.tap_chord(parse_key_spec("ctrl+v"))
    assert not guard.active()  # never entered: its tail would still be running


# --- the core already waited: the typist does not wait again ------------------------------


def test_keys_the_caller_saw_held_leave_the_text_on_the_clipboard_without_a_wait() -> None:
    """The dictation core waited on its own clock and the keys stayed held: the typist
    goes straight to the clipboard path (its own wait would block the Qt thread)."""
    time = FakeTime()
    keyboard = Keyboard(time)
    wait = ModifierWait(keyboard, clock=time.clock, sleep=time.sleep)
    log: list[tuple[str, str, str | None]] = []
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: RecordingOutput("keys", log)
    }
    cb = FakeClipboard()
    typist = Typist(
        OutputPolicy(),
        outputs,
        FakeFocus(EDITOR),
        fallback=cb,
        modifier_wait=wait,
        modifier_probe=keyboard.held,
    )
    assert typist.held_modifiers() == ("Control_R",)
    reads = keyboard.reads
    result = typist.type_final("hello\nworld", modifiers_held=("Control_R",))
    assert log == [] and time.sleeps == [] and keyboard.reads == reads  # no wait at all
    assert result.left_on_clipboard and cb.content.text == "hello world"
    assert result.notice is not None and result.notice.startswith(
        "A modifier key (Control_R) stayed held; the text is on the clipboard."
    )
    # nothing held any more: the next text is typed, the wait finding nothing to wait for
    keyboard.release_at = time.t
    assert typist.type_final("again").ok and log == [("keys", "again", "ctrl+v")]
    assert time.sleeps == []


def test_a_typist_without_a_probe_reports_no_modifiers() -> None:
    log: list[tuple[str, str, str | None]] = []
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: RecordingOutput("keys", log)
    }
    assert Typist(OutputPolicy(), outputs, FakeFocus(EDITOR)).held_modifiers() == ()
