"""The user's Enter (or another caret key) reaches the app's typist: no joining space next.

The tray app's wiring (``bind_hotkeys``) over a fake key backend, with the app's own
:class:`~desktop.parts.AppTypist` typing into a recording output: the listener's worker
thread reports the key, the bridge carries it to the Qt thread, the typist forgets the
previous utterance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from pytestqt.qtbot import QtBot

from desktop.hotkey.keys import KeySpec
from desktop.hotkey.listener import KeySink
from desktop.output.base import InjectionGuard, OutputMethod, OutputTarget, TextOutput
from desktop.output.focus import FocusInfo
from desktop.output.policy import OutputPolicy
from desktop.output.typist import Typist
from desktop.parts import AppTypist, BoundHotkeys, bind_hotkeys
from desktop.settings import Settings

CHAT = FocusInfo(window_id=7, pid=700, app="Chat", title="friends", instance="chat")


class RecordingOutput:
    name = "keys"

    def __init__(self) -> None:
        self.typed: list[str] = []

    def type_text(
        self, text: str, paste_chord: str | None = None, target: OutputTarget | None = None
    ) -> None:
        self.typed.append(text)


class ChatFocus:
    def current(self) -> FocusInfo | None:
        return CHAT


class FakeBackend:
    """Raw Input's place: reports keys to the listener from the test's thread."""

    sink: KeySink | None = None

    def start(self, sink: KeySink, timeout: float) -> None:
        self.sink = sink

    def stop(self, timeout: float) -> None:
        self.sink = None

    def is_down(self, name: str) -> bool | None:
        return None

    def suppress(self, specs: list[KeySpec]) -> None:
        pass

    def tap(self, name: str, injected: bool = False) -> None:
        assert self.sink is not None
        self.sink.key_down(name, injected)
        self.sink.key_up(name)


class Commands:
    """The coordinator's hotkey slots, recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[[], None]:
        return lambda: self.calls.append(name)


class Rig:
    def __init__(self, typist: AppTypist, output: RecordingOutput, backend: FakeBackend) -> None:
        self.typist, self.output, self.backend = typist, output, backend
        self.commands = Commands()
        self.reset_threads: list[str] = []


@pytest.fixture
def rig(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    output = RecordingOutput()

    def build(policy: OutputPolicy, *, guard: InjectionGuard | None = None, **_: object) -> Typist:
        outputs: dict[OutputMethod, TextOutput] = {OutputMethod.KEYSTROKES: output}
        return Typist(policy, outputs, ChatFocus(), guard=guard or InjectionGuard())

    monkeypatch.setattr("desktop.parts.build_default_typist", build)
    settings = Settings()
    typist = AppTypist(settings)
    # no tail after typing: the test's keys come at once, and an injected press within
    # the tail would be dropped before the listener ever judged it
    typist.guard.tail_s = 0.0
    r = Rig(typist, output, FakeBackend())
    original = typist.reset_spacing

    def reset_spacing() -> None:
        r.reset_threads.append(threading.current_thread().name)
        original()

    monkeypatch.setattr(typist, "reset_spacing", reset_spacing)
    bound: BoundHotkeys = bind_hotkeys(settings, r.commands, typist, r.backend)  # type: ignore[arg-type]
    yield r
    bound.stop()


def test_enter_after_an_utterance_starts_the_next_one_without_a_space(
    rig: Rig, qtbot: QtBot
) -> None:
    rig.typist.type_final("Hello there")
    rig.backend.tap("enter")  # the user sends the message
    qtbot.waitUntil(lambda: bool(rig.reset_threads), timeout=3000)
    assert rig.reset_threads == [threading.main_thread().name]  # the typist's thread
    rig.typist.type_final("Next message")
    assert rig.output.typed == ["Hello there", "Next message"]


def test_typing_and_injected_keys_keep_the_join(rig: Rig, qtbot: QtBot) -> None:
    rig.typist.type_final("Hello there")
    rig.backend.tap("enter", injected=True)  # synthesized by another program
    for name in (",", "backspace", "a", "delete", "ctrl_l"):
        rig.backend.tap(name)
    # The hold key's command crosses to the Qt thread after anything the keys before it
    # sent (one queue, in order): once it is here, they have been handled.
    rig.backend.tap(Settings().hold_key)
    qtbot.waitUntil(lambda: "talk_pressed" in rig.commands.calls, timeout=3000)
    assert rig.reset_threads == []
    rig.typist.type_final("next")
    assert rig.output.typed == ["Hello there", " next"]
