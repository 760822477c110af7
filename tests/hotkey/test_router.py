"""HotkeyRouter: bindings, chords, cancel on chord use, key capture (no X needed)."""

from __future__ import annotations

from desktop.hotkey.debounce import DebounceConfig
from desktop.hotkey.router import HotkeyRouter, Routed

CFG = DebounceConfig(release_grace_s=0.05, min_hold_s=0.25)


class Driver:
    def __init__(self, bindings: dict[str, str]) -> None:
        self.router = HotkeyRouter(bindings, CFG)
        self.out: list[tuple[str, str]] = []
        self.captured: list[str] = []

    def _take(self, routed: list[Routed], captured: str | None = None) -> None:
        self.out += [(r.binding, r.command.kind.value) for r in routed]
        if captured is not None:
            self.captured.append(captured)

    def down(self, key: str, t: float) -> None:
        self._take(*self.router.press(key, t))

    def up(self, key: str, t: float) -> None:
        self._take(*self.router.release(key, t))

    def poll(self, t: float) -> None:
        self._take(self.router.poll(t))


def test_hold_and_tap() -> None:
    d = Driver({"hold": "f9"})
    d.down("f9", 0.0)
    d.up("f9", 1.0)
    d.poll(1.1)
    d.down("f9", 2.0)
    d.up("f9", 2.05)
    d.poll(3.0)
    assert d.out == [("hold", "press"), ("hold", "release"), ("hold", "press"), ("hold", "tap")]


def test_right_ctrl_hold_cancelled_by_shortcut() -> None:
    d = Driver({"hold": "ctrl_r"})
    d.down("ctrl_r", 0.0)
    d.down("c", 0.2)  # Right Ctrl + C: a copy, not dictation
    d.up("c", 0.25)
    d.up("ctrl_r", 0.4)
    d.poll(1.0)
    assert d.out == [("hold", "press"), ("hold", "cancel")]


def test_left_ctrl_does_not_fire_right_ctrl_and_shortcuts_do_not_fire() -> None:
    d = Driver({"hold": "ctrl_r"})
    d.down("ctrl_l", 0.0)
    d.up("ctrl_l", 0.5)
    d.down("shift_l", 1.0)
    d.down("ctrl_r", 1.1)  # Shift+Right Ctrl is not the hotkey
    d.up("ctrl_r", 1.5)
    d.up("shift_l", 1.6)
    d.poll(2.0)
    assert d.out == []


def test_chord_binding_and_toggle_alongside_hold() -> None:
    d = Driver({"hold": "ctrl_r", "toggle": "ctrl+alt+space"})
    d.down("ctrl_l", 0.0)
    d.down("alt_l", 0.05)
    d.down("space", 0.1)
    d.up("space", 0.15)
    d.up("alt_l", 0.2)
    d.up("ctrl_l", 0.2)
    d.poll(1.0)
    assert d.out == [("toggle", "press"), ("toggle", "tap")]


def test_x11_autorepeat_of_the_hold_key() -> None:
    d = Driver({"hold": "ctrl_r"})
    d.down("ctrl_r", 0.0)
    for i in range(10):
        t = 0.66 + 0.04 * i
        d.up("ctrl_r", t)
        d.down("ctrl_r", t)
    d.up("ctrl_r", 1.5)
    d.poll(2.0)
    assert d.out == [("hold", "press"), ("hold", "release")]


def test_xdotool_style_double_modifier_press_still_matches() -> None:
    # `xdotool keydown Control_R` also presses Control_L first
    d = Driver({"hold": "ctrl_r"})
    d.down("ctrl_l", 0.0)
    d.down("ctrl_r", 0.0)
    d.up("ctrl_l", 0.6)
    d.up("ctrl_r", 0.6)
    d.poll(1.0)
    assert d.out == [("hold", "press"), ("hold", "release")]


def test_deadline_and_poll() -> None:
    r = HotkeyRouter({"hold": "f9"}, CFG)
    r.press("f9", 0.0)
    assert r.deadline() is None
    r.release("f9", 1.0)
    assert r.deadline() == 1.05
    assert [x.command.kind.value for x in r.poll(1.05)] == ["release"]


def test_capture_chord_and_lone_modifiers() -> None:
    d = Driver({"hold": "f9"})
    d.router.start_capture()
    d.down("ctrl_l", 0.0)
    d.down("alt_l", 0.1)
    d.down("space", 0.2)
    assert d.captured == ["ctrl+alt+space"] and not d.router.capturing
    d.up("space", 0.3)
    d.up("alt_l", 0.3)
    d.up("ctrl_l", 0.3)
    d.router.start_capture()
    d.down("ctrl_r", 1.0)
    d.up("ctrl_r", 1.2)
    d.router.start_capture()
    d.down("f9", 2.0)  # while capturing, the binding does not fire
    d.up("f9", 2.5)
    d.router.start_capture()
    d.down("ctrl_l", 3.0)
    d.down("shift_r", 3.1)
    d.up("shift_r", 3.2)
    d.up("ctrl_l", 3.3)
    d.poll(4.0)
    assert d.captured == ["ctrl+alt+space", "ctrl_r", "f9", "ctrl+shift_r"]
    assert d.out == []


def test_capture_and_rebinding_cancel_a_held_binding() -> None:
    r = HotkeyRouter({"hold": "f9"}, CFG)
    r.press("f9", 0.0)
    out = r.start_capture(0.5)
    assert [(x.binding, x.command.kind.value) for x in out] == [("hold", "cancel")]
    r.cancel_capture()
    r.press("f8", 1.0)
    out = r.set_bindings({"hold": "f8"}, 1.1)
    assert out == []  # f8 was pressed before it was bound: nothing held
    assert r.bindings == {"hold": "f8"}
    routed, _ = r.press("f8", 2.0)
    assert routed == []  # still down from before (a repeat), not a new press
    r.release("f8", 2.1)
    r.poll(3.0)
    routed, _ = r.press("f8", 4.0)
    assert [x.command.kind.value for x in routed] == ["press"]


def kinds(routed: list[Routed]) -> list[tuple[str, str]]:
    return [(r.binding, r.command.kind.value) for r in routed]


def test_held_key_read_as_up_twice_is_released() -> None:
    """A release Windows never delivered (elevated window in front) ends the hold."""
    r = HotkeyRouter({"hold": "ctrl_r"}, CFG)
    r.press("ctrl_r", 0.0)
    assert r.held_keys() == {"ctrl_r"}
    down = {"ctrl_r": True}
    assert r.check_held(0.1, down.get) == []
    down["ctrl_r"] = False
    assert r.check_held(0.2, down.get) == []  # one reading may race a press on its way
    down["ctrl_r"] = True
    assert r.check_held(0.3, down.get) == []  # down again: the count starts over
    down["ctrl_r"] = False
    assert r.check_held(0.4, down.get) == []
    assert r.check_held(0.5, down.get) == []  # second miss in a row: released at 0.5
    assert r.held_keys() == set()
    assert kinds(r.poll(1.0)) == [("hold", "release")]
    # the late real release changes nothing; the next press starts a new hold
    assert kinds(r.release("ctrl_r", 1.1)[0]) == []
    assert kinds(r.press("ctrl_r", 2.0)[0]) == [("hold", "press")]


def test_key_state_unknown_leaves_the_hold_alone() -> None:
    r = HotkeyRouter({"hold": "f9"}, CFG)
    r.press("f9", 0.0)
    for i in range(5):
        assert r.check_held(0.1 * (i + 1), lambda _key: None) == []
    assert r.held_keys() == {"f9"}


def test_no_polling_without_a_hold() -> None:
    r = HotkeyRouter({"hold": "f9"}, CFG)
    r.press("a", 0.0)  # not a binding
    asked: list[str] = []

    def is_down(key: str) -> bool:
        asked.append(key)
        return False

    assert r.check_held(0.1, is_down) == []
    assert asked == [] and r.held_keys() == set()


def test_session_lock_cancels_and_forgets_held_keys() -> None:
    r = HotkeyRouter({"hold": "ctrl_r"}, CFG)
    r.press("ctrl_r", 0.0)
    assert kinds(r.forget_keys(1.0)) == [("hold", "cancel")]
    assert r.held_keys() == set()
    # after unlocking, no release came for ctrl_r: its next press must be a new press,
    # not taken for an auto-repeat of a key still down
    assert kinds(r.press("ctrl_r", 5.0)[0]) == [("hold", "press")]
    r.release("ctrl_r", 5.5)
    assert kinds(r.poll(6.0)) == [("hold", "release")]
