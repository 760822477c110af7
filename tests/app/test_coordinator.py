"""The coordinator (the Qt adapter over the dictation core) drives the real pipeline
(Silero VAD on real speech) and the real streaming client against a real server
process; typing is recorded. The last tests run it offscreen with no server: client
events are handed to it as the client thread would."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QEventLoop, QTimer

from desktop.audio.segmenter import (
    AudioChunk,
    DropReason,
    EndReason,
    Mode,
    UtteranceDropped,
    UtteranceEnded,
    UtteranceStarted,
)
from desktop.audio.source import ArraySource
from desktop.audio.vad import ScriptedDetector, SileroVad
from desktop.coordinator import Coordinator, HistoryEntry, Stage
from desktop.output.base import OutputError
from desktop.output.typist import TypingResult
from desktop.settings import Settings
from protocol.client_events import FinalText
from protocol.client_timeline import UtteranceTimeline
from tests.conftest import Recording


class RecordingTyper:
    def __init__(self) -> None:
        self.typed: list[str] = []
        self.thread_ok = True

    def type_final(self, text: str) -> None:
        self.thread_ok &= threading.current_thread() is threading.main_thread()
        self.typed.append(text)


def speech_with_silence(recordings: list[Recording], ids: list[str]) -> np.ndarray:
    silence = np.zeros(int(1.2 * 16000), np.int16)
    parts = [silence]
    for rec in (r for r in recordings if r.id in ids):
        parts += [np.frombuffer(rec.pcm(), "<i2"), silence]
    return np.concatenate(parts)


def test_hands_free_dictation_types_each_sentence(qtbot, server_process, recordings) -> None:
    _, port = server_process
    audio = speech_with_silence(recordings, ["ps_cards_001", "ps_goforward"])
    typer = RecordingTyper()
    settings = replace(Settings(), server_url=f"ws://127.0.0.1:{port}", mode=Mode.HANDS_FREE)
    coordinator = Coordinator(
        settings, typer, lambda s: ArraySource(audio, realtime=True), SileroVad
    )
    stages: list[Stage] = []
    finals: list[HistoryEntry] = []
    partials: list[tuple[str, str]] = []
    coordinator.stage_changed.connect(stages.append)
    coordinator.final.connect(finals.append)
    coordinator.partial.connect(lambda a, b: partials.append((a, b)))
    coordinator.start()
    try:
        assert stages == []  # hands-free: the microphone opens only when switched on
        coordinator.toggle_dictation()
        qtbot.waitUntil(lambda: len(finals) == 2, timeout=30_000)
    finally:
        coordinator.shutdown()
    assert [f.text for f in finals] == typer.typed and len(typer.typed) == 2
    assert all(typer.typed) and typer.thread_ok
    assert all(f.typed and f.latency_ms is not None and 0 < f.latency_ms < 5000 for f in finals)
    assert [e.text for e in coordinator.history] == typer.typed
    for stage in (Stage.LISTENING, Stage.SPEAKING, Stage.FINALIZING, Stage.TYPING):
        assert stage in stages
    assert stages.index(Stage.LISTENING) < stages.index(Stage.SPEAKING)
    assert partials, "partials are shown while speaking"


def test_push_to_talk_types_only_while_key_held(qtbot, server_process, recordings) -> None:
    _, port = server_process
    audio = speech_with_silence(recordings, ["ps_0880"])
    typer = RecordingTyper()
    settings = replace(
        Settings(), server_url=f"ws://127.0.0.1:{port}", mode=Mode.PUSH_TO_TALK, warm_mic=True
    )
    coordinator = Coordinator(
        settings, typer, lambda s: ArraySource(audio, realtime=True), SileroVad
    )
    finals: list[HistoryEntry] = []
    coordinator.final.connect(finals.append)
    coordinator.start()  # warm microphone, nothing sent yet
    try:
        qtbot.wait(1500)  # speech starts at 1.2 s: key pressed 0.3 s late
        assert coordinator.facts.stage is Stage.IDLE
        coordinator.talk_pressed()
        assert coordinator.facts.active
        qtbot.wait(2800)
        coordinator.talk_released()
        qtbot.waitUntil(lambda: len(finals) == 1, timeout=20_000)
    finally:
        coordinator.shutdown()
    assert typer.typed == [finals[0].text] and finals[0].text


def test_microphone_failure_is_reported_not_fatal(qtbot) -> None:
    def broken(_: Settings) -> ArraySource:
        raise OSError("PortAudio library not found")

    coordinator = Coordinator(
        replace(Settings(), mode=Mode.HANDS_FREE), RecordingTyper(), broken, SileroVad
    )
    problems: list[str] = []
    coordinator.problem.connect(problems.append)
    coordinator.start()
    try:
        coordinator.toggle_dictation()
        assert problems and "PortAudio" in problems[0]
        assert coordinator.facts.stage is Stage.IDLE
    finally:
        coordinator.shutdown()


class FailingSource(ArraySource):
    """A microphone that dies after a second of audio."""

    def read(self, timeout: float | None = None) -> np.ndarray | None:
        if self._pos >= 16000:
            raise OSError("device unplugged and gone for good")
        return super().read(timeout)


def test_audio_thread_failure_is_reported_and_dictation_stops(qtbot) -> None:
    silence = np.zeros(3 * 16000, np.int16)
    coordinator = Coordinator(
        replace(Settings(), mode=Mode.HANDS_FREE),
        RecordingTyper(),
        lambda s: FailingSource(silence),
        SileroVad,
    )
    problems: list[str] = []
    coordinator.problem.connect(problems.append)
    coordinator.start()
    try:
        coordinator.toggle_dictation()
        assert coordinator.facts.stage is Stage.LISTENING
        qtbot.waitUntil(lambda: bool(problems), timeout=5000)
        assert "device unplugged" in problems[0]
        assert coordinator.facts.stage is Stage.IDLE
    finally:
        coordinator.shutdown()


# ---------------------------------------------------------------- the Qt adapter, offscreen


class PastingTyper:
    """Types like the clipboard output: a nested event loop runs while it waits for the
    paste, and Qt delivers whatever is queued meanwhile."""

    def __init__(self, during_first: Callable[[], None]) -> None:
        self.during_first = during_first
        self.typed: list[str] = []
        self.depth = 0
        self.max_depth = 0

    def type_final(self, text: str) -> None:
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)
        try:
            if not self.typed:
                self.during_first()
            loop = QEventLoop()
            QTimer.singleShot(30, loop.quit)
            loop.exec()  # the nested event loop: queued signals are delivered here
            self.typed.append(text)
        finally:
            self.depth -= 1


def offline_coordinator(
    typer: object,
    audio: np.ndarray | None = None,
    **kwargs: Any,
) -> Coordinator:
    """A hands-free coordinator whose server is unreachable and whose microphone plays
    ``audio`` (a little silence by default) to a detector that hears no speech: finals
    and lifecycle events are posted by the test."""
    samples = np.zeros(512, np.int16) if audio is None else audio
    return Coordinator(
        replace(Settings(), server_url="ws://127.0.0.1:9", mode=Mode.HANDS_FREE),
        typer,
        lambda s: ArraySource(samples),
        lambda: ScriptedDetector([]),
        **kwargs,
    )


def final_text(uid: int, text: str) -> FinalText:
    return FinalText(uid, text, None, UtteranceTimeline(uid))


def test_a_final_delivered_by_the_typists_nested_event_loop_waits_its_turn(qtbot) -> None:
    silence = np.zeros(16000, np.int16)
    coordinator: Coordinator | None = None

    def second_final_from_the_client_thread() -> None:
        assert coordinator is not None
        thread = threading.Thread(
            target=coordinator.on_client_event, args=(final_text(2, "second"),)
        )
        thread.start()
        thread.join()

    typer = PastingTyper(second_final_from_the_client_thread)
    coordinator = offline_coordinator(typer, silence)
    stages: list[Stage] = []
    finals: list[HistoryEntry] = []
    coordinator.stage_changed.connect(stages.append)
    coordinator.final.connect(finals.append)
    coordinator.on_client_event(final_text(1, "first"))
    qtbot.waitUntil(lambda: len(finals) == 2, timeout=5000)
    assert typer.typed == ["first", "second"] and typer.max_depth == 1
    assert [(f.text, f.typed) for f in finals] == [("first", True), ("second", True)]
    assert [e.text for e in coordinator.history] == ["first", "second"]
    assert stages == [Stage.TYPING, Stage.IDLE], "typing the second follows the first"


def test_typing_errors_and_deferrals_are_results_not_exceptions(qtbot) -> None:
    class Refusing:
        def type_final(self, text: str) -> TypingResult:
            if text == "boom":
                raise OutputError("no display")
            return TypingResult(text, deferred=True)

    coordinator = offline_coordinator(Refusing())
    problems: list[str] = []
    finals: list[HistoryEntry] = []
    coordinator.problem.connect(problems.append)
    coordinator.final.connect(finals.append)
    coordinator.on_client_event(final_text(1, "boom"))
    coordinator.on_client_event(final_text(2, "later"))
    qtbot.waitUntil(lambda: len(finals) == 2, timeout=5000)
    assert [(f.text, f.typed) for f in finals] == [("boom", False), ("later", False)]
    assert problems == ["Could not type the text: OutputError: no display"]
    assert coordinator.facts.stage is Stage.IDLE


class NoTyping:
    def type_final(self, text: str) -> None:
        pass


@pytest.mark.parametrize("speech", [True, False], ids=["a quick yes", "a brushed key"])
def test_a_tap_reaches_the_client_only_if_it_held_speech(qtbot, monkeypatch, speech) -> None:
    """Hotkey TAP → coordinator → the audio thread's judgement; every segmenter event,
    audio included, goes from the audio thread to the client directly."""
    noise = np.round(np.random.default_rng(2).normal(0, 300, 16_000 * 4)).astype(np.int16)
    settings = replace(Settings(), server_url="ws://127.0.0.1:9", mode=Mode.PUSH_TO_TALK)
    coordinator = Coordinator(
        settings,
        NoTyping(),
        lambda s: ArraySource(noise, realtime=True),
        lambda: ScriptedDetector([], default=0.95 if speech else 0.02),
    )
    to_client: list[object] = []
    threads: set[str] = set()

    def submit(event: object) -> None:
        threads.add(threading.current_thread().name)
        to_client.append(event)

    monkeypatch.setattr(coordinator.client, "submit", submit)
    coordinator.start()
    try:
        coordinator.talk_pressed()
        qtbot.wait(150)
        coordinator.talk_tapped()
        qtbot.waitUntil(
            lambda: any(isinstance(e, UtteranceEnded | UtteranceDropped) for e in to_client),
            timeout=3000,
        )
    finally:
        coordinator.shutdown()
    assert threads == {"tingxie-audio"}
    if speech:
        assert isinstance(to_client[0], UtteranceStarted)
        assert any(isinstance(e, AudioChunk) for e in to_client)
        ended = [e for e in to_client if isinstance(e, UtteranceEnded)]
        assert [e.reason for e in ended] == [EndReason.RELEASED]
    else:
        assert [type(e) for e in to_client] == [UtteranceDropped]
        assert to_client[0].reason is DropReason.CANCELLED


def test_hotkey_commands_reach_the_coordinator_as_what_they_are(qtbot) -> None:
    from desktop.hotkey.debounce import Command, CommandKind
    from desktop.hotkey.router import Routed
    from desktop.parts import HotkeyBridge

    calls: list[str] = []

    class Slots:
        def __getattr__(self, name: str) -> Callable[[], None]:
            return lambda: calls.append(name)

    bridge = HotkeyBridge(Slots())  # type: ignore[arg-type]
    for kind in (CommandKind.PRESS, CommandKind.TAP, CommandKind.RELEASE, CommandKind.CANCEL):
        bridge.command.emit(Routed("hold", Command(kind, 1.0)))
    bridge.command.emit(Routed("toggle", Command(CommandKind.PRESS, 2.0)))
    assert calls == [
        "talk_pressed",
        "talk_tapped",
        "talk_released",
        "talk_cancelled",
        "talk_toggled",
    ]


def test_a_final_waiting_for_an_earlier_utterance_is_typed_by_the_qt_tick(qtbot) -> None:
    """The core's order-wait deadline becomes a Qt timer: utterance 1 never answers, and
    utterance 2's final is typed once it has waited order_wait_s."""
    typer = RecordingTyper()
    coordinator = offline_coordinator(typer)
    coordinator.core.order_wait_s = 0.3
    for uid in (1, 2):  # as the audio thread's lifecycle events would
        coordinator.core.post(UtteranceStarted(uid, 0, 0, Mode.HANDS_FREE))
        coordinator.core.post(UtteranceEnded(uid, EndReason.SILENCE, 0, 1, 1, 1))
    coordinator.on_client_event(final_text(2, "second"))
    qtbot.wait(100)
    assert typer.typed == [] and coordinator.facts.stage is Stage.FINALIZING
    qtbot.waitUntil(lambda: typer.typed == ["second"], timeout=3000)
    assert [e.text for e in coordinator.history] == ["second"]


def test_typing_waits_for_held_modifiers_on_qt_ticks_without_blocking(qtbot) -> None:
    """The core reads the modifier probe before each typing job and re-reads it on Qt
    ticks: the Qt thread stays free while the user holds Ctrl, the final is typed once
    it is released, and a key held past the wait sends the job with the keys named
    (the typist then leaves the text on the clipboard) after the same 1.5 s."""
    held: list[tuple[str, ...]] = [("Control_R",)]

    class Typer:
        def __init__(self) -> None:
            self.calls: list[tuple[str, tuple[str, ...]]] = []

        def type_final(self, text: str, *, modifiers_held: tuple[str, ...] = ()) -> None:
            self.calls.append((text, modifiers_held))

    typer = Typer()
    coordinator = offline_coordinator(typer, held_modifiers=lambda: held[0])
    for uid in (1, 2):
        coordinator.core.post(UtteranceStarted(uid, 0, 0, Mode.HANDS_FREE))
        coordinator.core.post(UtteranceEnded(uid, EndReason.SILENCE, 0, 1, 1, 1))
    coordinator.on_client_event(final_text(1, "after the release"))
    fired: list[int] = []
    timer = QTimer()
    timer.timeout.connect(lambda: fired.append(1))
    timer.start(10)
    qtbot.wait(200)
    assert typer.calls == [] and coordinator.facts.stage is Stage.TYPING
    assert len(fired) >= 5, "the Qt thread kept running its timers during the wait"
    held[0] = ()
    qtbot.waitUntil(lambda: typer.calls == [("after the release", ())], timeout=1000)
    # held for good: the job goes after 1.5 s with the keys named
    held[0] = ("Shift_L",)
    start = time.monotonic()
    coordinator.on_client_event(final_text(2, "held for good"))
    qtbot.waitUntil(lambda: len(typer.calls) == 2, timeout=5000)
    waited = time.monotonic() - start
    timer.stop()
    assert typer.calls[1] == ("held for good", ("Shift_L",))
    assert 1.4 <= waited < 3.0
