"""The pynput hotkey listener on a real X display, keys injected with xdotool (XTest)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from desktop.hotkey.debounce import DebounceConfig
from desktop.hotkey.listener import HotkeyListener
from desktop.hotkey.router import Routed
from desktop.output.base import InjectionGuard
from desktop.output.keystrokes import PynputKeySender
from tests.output.x11 import xdotool

CFG = DebounceConfig(release_grace_s=0.06, min_hold_s=0.25)


class Recorder:
    def __init__(self) -> None:
        self.commands: list[Routed] = []
        self.lock = threading.Lock()

    def __call__(self, routed: Routed) -> None:
        with self.lock:
            self.commands.append(routed)

    def kinds(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(r.binding, r.command.kind.value) for r in self.commands]

    def wait_for(self, n: int, timeout: float = 3.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while len(self.kinds()) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.15)  # anything unexpected after it would show up too
        return self.kinds()

    def clear(self) -> None:
        with self.lock:
            self.commands.clear()


@pytest.fixture
def make_listener(x11: str) -> Iterator[Callable[..., tuple[HotkeyListener, Recorder]]]:
    started: list[HotkeyListener] = []

    def make(bindings: dict[str, str], **kwargs: object) -> tuple[HotkeyListener, Recorder]:
        rec = Recorder()
        listener = HotkeyListener(bindings, rec, config=CFG, **kwargs)  # type: ignore[arg-type]
        listener.start()
        started.append(listener)
        return listener, rec

    yield make
    for listener in started:
        listener.stop()


def test_key_tap_and_hold(make_listener: Callable[..., tuple[HotkeyListener, Recorder]]) -> None:
    _, rec = make_listener({"hold": "f9"})
    xdotool("key", "F9")  # press+release ~2 ms apart: a tap
    assert rec.wait_for(2) == [("hold", "press"), ("hold", "tap")]
    rec.clear()
    before_down = time.monotonic()
    xdotool("keydown", "F9")
    time.sleep(0.4)  # the hold itself, not a wait for something to happen
    xdotool("keyup", "F9")
    after_up = time.monotonic()
    assert rec.wait_for(2) == [("hold", "press"), ("hold", "release")]
    # Between the sleep and the span of both xdotool runs (slow to start on a busy box).
    assert 0.35 < rec.commands[1].command.held_s < after_up - before_down + 0.1


class CountingListener(HotkeyListener):
    """Counts the raw presses pynput delivers (before debouncing)."""

    raw_presses = 0

    def _on_press(self, key: object, injected: bool = False) -> None:
        self.raw_presses += 1
        super()._on_press(key, injected)


def test_long_hold_through_x11_autorepeat(x11: str) -> None:
    rec = Recorder()
    listener = CountingListener({"hold": "f9"}, rec, config=CFG)
    listener.start()
    try:
        xdotool("keydown", "F9")
        time.sleep(1.2)  # longer than the X server's auto-repeat delay (660 ms)
        xdotool("keyup", "F9")
        assert rec.wait_for(2) == [("hold", "press"), ("hold", "release")]
        assert rec.commands[1].command.held_s > 1.1
    finally:
        listener.stop()
    # X auto-repeat sent release+press pairs (25/s after 660 ms); one hold came out.
    # (Modifiers such as Right Ctrl do not auto-repeat on X11; on Windows they do, as
    # press press press, which test_debounce covers.)
    assert listener.raw_presses > 5


def test_right_ctrl_shortcut_cancels(
    make_listener: Callable[..., tuple[HotkeyListener, Recorder]],
) -> None:
    _, rec = make_listener({"hold": "ctrl_r"})
    xdotool("keydown", "Control_R")
    time.sleep(0.1)
    xdotool("key", "c")
    xdotool("keyup", "Control_R")
    assert rec.wait_for(2) == [("hold", "press"), ("hold", "cancel")]


def test_own_typing_is_ignored(
    make_listener: Callable[..., tuple[HotkeyListener, Recorder]],
) -> None:
    guard = InjectionGuard(tail_s=0.3)
    listener, rec = make_listener({"hold": "f9", "other": "ctrl_l"}, ignore_while=guard.active)
    sender = PynputKeySender(guard)
    from desktop.hotkey.keys import parse_key_spec

    sender.tap_chord(parse_key_spec("f9"))  # what the typist would send: ignored
    sender.tap_chord(parse_key_spec("ctrl+v"))
    assert rec.wait_for(1, timeout=0.5) == []
    assert listener.ignored_presses >= 2
    time.sleep(0.35)  # after the guard's tail, real keys count again
    xdotool("key", "F9")
    assert rec.wait_for(2) == [("hold", "press"), ("hold", "tap")]


def test_rebinding_and_capture(
    make_listener: Callable[..., tuple[HotkeyListener, Recorder]],
) -> None:
    listener, rec = make_listener({"hold": "f9"})
    listener.set_bindings({"hold": "f8", "toggle": "ctrl+alt+space"})
    xdotool("key", "F9")
    xdotool("key", "F8")
    xdotool("key", "ctrl+alt+space")
    got = rec.wait_for(4)
    # each binding's commands in order (a TAP waits for the release grace, so the two
    # bindings' commands interleave)
    assert [k for b, k in got if b == "hold"] == ["press", "tap"]
    assert [k for b, k in got if b == "toggle"] == ["press", "tap"]
    assert listener.bindings == {"hold": "f8", "toggle": "ctrl+alt+space"}

    def later(*args: str) -> None:
        threading.Timer(0.1, lambda: xdotool(*args)).start()

    later("key", "ctrl+shift+F5")
    assert listener.capture_next_key(3) == "ctrl+shift+f5"
    later("key", "Control_R")
    assert listener.capture_next_key(3) == "ctrl_r"
    later("key", "F8")
    rec.clear()
    assert listener.capture_next_key(3) == "f8"
    assert rec.wait_for(1, timeout=0.3) == []  # a captured key does not fire its binding
    assert listener.capture_next_key(0.05) is None


def test_stop_returns_promptly(x11: str) -> None:
    rec = Recorder()
    listener = HotkeyListener({"hold": "f9"}, rec, config=CFG)
    listener.start()
    t0 = time.monotonic()
    listener.stop()
    assert time.monotonic() - t0 < 1.0
    assert not listener.running
    xdotool("key", "F9")
    assert rec.wait_for(1, timeout=0.3) == []


def test_caret_keys_arrive_under_their_canonical_names(
    make_listener: Callable[..., tuple[HotkeyListener, Recorder]],
) -> None:
    """What the typist's spacing reset sees: keypad keys (Num Lock off) and Shift+Tab
    (ISO_Left_Tab to X) are named as the main keys are, and as Windows names them."""
    from desktop.output.policy import moves_caret

    seen: list[str] = []
    make_listener({"hold": "f9"}, on_user_key=seen.append)
    xdotool("key", "Return", "KP_Enter", "shift+Tab", "KP_Up", "KP_Next", "Escape", "z")
    deadline = time.monotonic() + 3.0
    while "z" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == ["enter", "enter", "shift_l", "tab", "up", "page_down", "esc", "z"]
    assert [moves_caret(k) for k in seen] == [True] * 2 + [False] + [True] * 4 + [False]
