"""HotkeyListener over a KeyBackend (the Windows path) with a fake backend.

In-process: the listener's worker thread runs for real; tests wait for commands by
polling with a deadline. Times are the real monotonic clock (the router's release grace
and the key-state poll run on it), kept short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from desktop.hotkey.debounce import DebounceConfig
from desktop.hotkey.keys import KeySpec, format_key_spec
from desktop.hotkey.listener import HotkeyListener, KeySink
from desktop.hotkey.router import Routed

CFG = DebounceConfig(release_grace_s=0.03, min_hold_s=0.05)


class FakeBackend:
    def __init__(self) -> None:
        self.sink: KeySink | None = None
        self.down: dict[str, bool] = {}
        self.suppressed: list[list[str]] = []
        self.stopped = False
        self.polls = 0

    def start(self, sink: KeySink, timeout: float) -> None:
        self.sink = sink

    def stop(self, timeout: float) -> None:
        self.stopped = True

    def is_down(self, name: str) -> bool | None:
        self.polls += 1
        return self.down.get(name)

    def suppress(self, specs: list[KeySpec]) -> None:
        self.suppressed.append([format_key_spec(s) for s in specs])

    # the user's hands
    def press(self, name: str, injected: bool = False) -> None:
        assert self.sink is not None
        self.down[name] = True
        self.sink.key_down(name, injected)

    def release(self, name: str, seen: bool = True) -> None:
        assert self.sink is not None
        self.down[name] = False
        if seen:
            self.sink.key_up(name)


class Recorder:
    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, routed: Routed) -> None:
        with self.lock:
            self.commands.append((routed.binding, routed.command.kind.value))

    def wait_for(self, n: int, timeout: float = 3.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.commands) >= n:
                    return list(self.commands)
            time.sleep(0.005)
        with self.lock:
            return list(self.commands)


@pytest.fixture
def rig() -> Iterator[tuple[HotkeyListener, FakeBackend, Recorder, list[bool]]]:
    backend, rec, typing = FakeBackend(), Recorder(), [False]
    listener = HotkeyListener(
        {"hold": "ctrl_r"},
        rec,
        config=CFG,
        backend=backend,
        ignore_while=lambda: typing[0],
    )
    listener.start()
    yield listener, backend, rec, typing
    listener.stop()
    assert backend.stopped


def test_hold_and_release(rig: tuple[HotkeyListener, FakeBackend, Recorder, list[bool]]) -> None:
    _, keys, rec, _ = rig
    keys.press("ctrl_r")
    assert rec.wait_for(1) == [("hold", "press")]
    time.sleep(0.1)  # longer than min_hold_s
    keys.release("ctrl_r")
    assert rec.wait_for(2) == [("hold", "press"), ("hold", "release")]


def test_release_never_delivered_ends_the_hold_by_polling(
    rig: tuple[HotkeyListener, FakeBackend, Recorder, list[bool]],
) -> None:
    _, keys, rec, _ = rig
    keys.press("ctrl_r")
    assert rec.wait_for(1) == [("hold", "press")]
    time.sleep(0.25)  # polled while held, read as down: nothing happens
    assert rec.wait_for(1, timeout=0) == [("hold", "press")]
    assert keys.polls >= 1
    keys.release("ctrl_r", seen=False)  # e.g. released over an elevated window
    assert rec.wait_for(2) == [("hold", "press"), ("hold", "release")]


def test_polling_stops_when_nothing_is_held(
    rig: tuple[HotkeyListener, FakeBackend, Recorder, list[bool]],
) -> None:
    _, keys, rec, _ = rig
    keys.press("f5")  # not a binding
    time.sleep(0.3)
    assert keys.polls == 0
    assert rec.wait_for(1, timeout=0) == []


def test_session_lock_cancels_the_hold_and_the_next_press_counts(
    rig: tuple[HotkeyListener, FakeBackend, Recorder, list[bool]],
) -> None:
    _, keys, rec, _ = rig
    keys.press("ctrl_r")
    assert rec.wait_for(1) == [("hold", "press")]
    assert keys.sink is not None
    keys.sink.session_locked()  # Win+L: the release will never come
    assert rec.wait_for(2) == [("hold", "press"), ("hold", "cancel")]
    keys.press("ctrl_r")  # after unlocking
    assert rec.wait_for(3)[-1] == ("hold", "press")


def test_injected_presses_are_dropped_only_while_typing(
    rig: tuple[HotkeyListener, FakeBackend, Recorder, list[bool]],
) -> None:
    listener, keys, rec, typing = rig
    typing[0] = True
    keys.press("ctrl_r", injected=True)  # synthesized while our typist types
    keys.release("ctrl_r")
    time.sleep(0.1)
    assert rec.wait_for(1, timeout=0) == []
    assert listener.ignored_presses == 1
    keys.press("ctrl_r")  # the user's real key still counts while typing
    assert rec.wait_for(1) == [("hold", "press")]


def test_bindings_are_suppressed_at_start_and_on_rebinding(
    rig: tuple[HotkeyListener, FakeBackend, Recorder, list[bool]],
) -> None:
    listener, keys, _, _ = rig
    assert keys.suppressed == [["ctrl_r"]]
    listener.set_bindings({"hold": "f9", "toggle": "ctrl+alt+space"})
    assert keys.suppressed[-1] == ["f9", "ctrl+alt+space"]


class KeysSeen:
    """The listener's ``on_user_key`` calls, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, name: str) -> None:
        with self.lock:
            self.names.append(name)

    def wait_for(self, last: str, timeout: float = 3.0) -> list[str]:
        """All names once ``last`` arrived (presses are handled in order, so anything
        reported before it is in the list by then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if last in self.names:
                    return list(self.names)
            time.sleep(0.005)
        with self.lock:
            return list(self.names)


@pytest.fixture
def seen_rig() -> Iterator[tuple[HotkeyListener, FakeBackend, Recorder, KeysSeen]]:
    backend, rec, seen = FakeBackend(), Recorder(), KeysSeen()
    listener = HotkeyListener(
        {"hold": "ctrl_r", "toggle": "ctrl+alt+home"},
        rec,
        config=CFG,
        backend=backend,
        on_user_key=seen,
    )
    listener.start()
    yield listener, backend, rec, seen
    listener.stop()


def test_the_users_keys_are_reported_but_not_injected_ones(
    seen_rig: tuple[HotkeyListener, FakeBackend, Recorder, KeysSeen],
) -> None:
    _, keys, _, seen = seen_rig
    keys.press("enter", injected=True)  # another program's synthesized Enter
    keys.release("enter")
    keys.press("enter")
    keys.release("enter")
    keys.press("a")
    keys.release("a")
    assert seen.wait_for("a") == ["enter", "a"]


def test_binding_keys_are_not_reported(
    seen_rig: tuple[HotkeyListener, FakeBackend, Recorder, KeysSeen],
) -> None:
    _, keys, rec, seen = seen_rig
    keys.press("ctrl_r")  # the hold key, its auto-repeat, its release
    keys.press("ctrl_r")
    keys.release("ctrl_r")
    assert rec.wait_for(2) == [("hold", "press"), ("hold", "tap")]  # after the release grace
    for name in ("ctrl_l", "alt_l", "home"):  # the toggle chord: only its modifiers are seen
        keys.press(name)
    for name in ("home", "alt_l", "ctrl_l"):
        keys.release(name)
    # a Home press within the release grace would be a bounce of the chord's Home
    assert rec.wait_for(4) == [
        ("hold", "press"),
        ("hold", "tap"),
        ("toggle", "press"),
        ("toggle", "tap"),
    ]
    keys.press("home")  # Home alone moves the caret
    assert seen.wait_for("home") == ["ctrl_l", "alt_l", "home"]


def test_a_key_captured_for_the_settings_is_not_reported(
    seen_rig: tuple[HotkeyListener, FakeBackend, Recorder, KeysSeen],
) -> None:
    listener, keys, _, seen = seen_rig
    captured: list[str] = []
    listener.capture_next(captured.append)
    keys.press("end")
    keys.release("end")
    keys.press("up")
    assert seen.wait_for("up") == ["up"]
    assert captured == ["end"]
