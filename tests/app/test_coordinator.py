"""The coordinator drives the real pipeline (Silero VAD on real speech) and the real
streaming client against a real server process; typing is recorded."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from desktop.audio.source import ArraySource
from desktop.audio.vad import SileroVad
from desktop.coordinator import Coordinator, HistoryEntry, Stage
from desktop.settings import Settings
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
    settings = replace(Settings(), server_url=f"ws://127.0.0.1:{port}", mode="hands_free")
    coordinator = Coordinator(settings, typer, lambda s: ArraySource(audio, realtime=True),
                              SileroVad)
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
    settings = replace(Settings(), server_url=f"ws://127.0.0.1:{port}", mode="push_to_talk")
    coordinator = Coordinator(settings, typer, lambda s: ArraySource(audio, realtime=True),
                              SileroVad)
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

    coordinator = Coordinator(replace(Settings(), mode="hands_free"), RecordingTyper(), broken,
                              SileroVad)
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
        replace(Settings(), mode="hands_free"), RecordingTyper(),
        lambda s: FailingSource(silence), SileroVad,
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
