"""Start/stop sound cues: the files, the VAD's view of them, the player, and when the
coordinator asks for them."""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soxr

from desktop.audio.source import ArraySource
from desktop.audio.vad import VAD_CHUNK_SAMPLES, ScriptedDetector, SileroOnnxVad
from desktop.coordinator import Coordinator, DictationFacts, Stage
from desktop.settings import Settings
from desktop.sounds import Cue, CueFormatError, CuePlayer, Sound, cue_path, read_sound

ROOT = Path(__file__).parents[2]


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), n=8192))
    return float(np.fft.rfftfreq(8192, 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("cue", list(Cue))
def test_cue_files_are_short_soft_and_click_free(cue: Cue) -> None:
    sound = read_sound(cue_path(cue))
    assert sound.rate == 48_000 and sound.samples.ndim == 1
    assert 0.05 <= sound.seconds <= 0.150
    peak_dbfs = 20 * np.log10(np.abs(sound.samples).max() / 32768)
    assert -24 <= peak_dbfs <= -12
    edge = round(0.001 * sound.rate)  # the first and last millisecond
    assert np.abs(sound.samples[:edge]).max() < 0.01 * 32768
    assert np.abs(sound.samples[-edge:]).max() < 0.01 * 32768
    third = len(sound.samples) // 3
    first, last = (
        dominant_hz(part, sound.rate) for part in (sound.samples[:third], sound.samples[-third:])
    )
    assert (last > first * 1.2) if cue is Cue.START else (first > last * 1.2), (first, last)


def test_committed_cues_are_what_the_script_writes(tmp_path: Path) -> None:
    path = ROOT / "resources" / "source" / "make_sounds.py"
    spec = importlib.util.spec_from_file_location("make_sounds", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for written in module.write_sounds(tmp_path):
        assert written.read_bytes() == cue_path(Cue(written.stem)).read_bytes(), written.name


def test_not_a_wav_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "start.wav"
    bad.write_bytes(b"RIFF....not really")
    with pytest.raises(CueFormatError):
        read_sound(bad)


@pytest.mark.parametrize("cue", list(Cue))
def test_the_vad_never_takes_a_cue_for_speech(cue: Cue) -> None:
    """Heard by the microphone, at any chunk alignment and even 4× louder, a cue stays
    below the speech threshold (0.5), so it cannot open an utterance on its own."""
    sound = read_sound(cue_path(cue))
    at_16k = soxr.resample(sound.samples.astype(np.float32) / 32768, sound.rate, 16_000)
    vad, worst = SileroOnnxVad(), 0.0
    for gain in (1.0, 4.0):
        for offset in range(0, VAD_CHUNK_SAMPLES, 32):
            heard = np.concatenate([np.zeros(8_000 + offset), gain * at_16k, np.zeros(8_000)])
            pcm = np.round(np.clip(heard, -1, 1) * 32767).astype(np.int16)
            vad.reset()
            for i in range(len(pcm) // VAD_CHUNK_SAMPLES):
                chunk = pcm[i * VAD_CHUNK_SAMPLES : (i + 1) * VAD_CHUNK_SAMPLES]
                worst = max(worst, vad.speech_probability(chunk))
    assert worst < 0.5, worst


# ---------------------------------------------------------------- the player


class BlockingPlayer:
    """Records what it was asked to play; each playback waits until released."""

    def __init__(self) -> None:
        self.played: list[tuple[Sound, str]] = []
        self.release = threading.Event()
        self.done = threading.Semaphore(0)

    def __call__(self, sound: Sound) -> None:
        self.played.append((sound, threading.current_thread().name))
        self.release.wait(5)
        self.done.release()


def test_disabled_cues_neither_load_nor_play() -> None:
    loaded: list[Cue] = []
    player = BlockingPlayer()
    cues = CuePlayer(False, play=player, load=lambda c: loaded.append(c) or read_sound(cue_path(c)))
    cues.on_recording_changed(True)
    cues.on_recording_changed(False)
    cues.close()
    assert loaded == [] and player.played == []


def test_enabled_cues_play_in_order_without_blocking_the_caller() -> None:
    player = BlockingPlayer()
    cues = CuePlayer(True, play=player)
    t0 = time.perf_counter()
    cues.on_recording_changed(True)
    cues.on_recording_changed(False)
    assert time.perf_counter() - t0 < 0.1, "the caller never waits for the sound device"
    player.release.set()
    assert player.done.acquire(timeout=5) and player.done.acquire(timeout=5)
    cues.close()
    start, stop = read_sound(cue_path(Cue.START)), read_sound(cue_path(Cue.STOP))
    assert [
        np.array_equal(s.samples, e.samples)
        for (s, _), e in zip(player.played, (start, stop), strict=True)
    ] == [True, True]
    assert {thread for _, thread in player.played} == {"sound-cues"}


def test_a_failing_sound_device_is_logged_and_later_cues_still_play(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    done = threading.Event()

    def flaky(sound: Sound) -> None:
        calls.append(len(sound.samples))
        if len(calls) == 1:
            raise OSError("no default output device")
        done.set()

    cues = CuePlayer(True, play=flaky)
    with caplog.at_level(logging.WARNING, logger="desktop.sounds"):
        cues.play(Cue.START)
        cues.play(Cue.STOP)
        assert done.wait(5)
        cues.close()
    assert len(calls) == 2
    assert "no default output device" in caplog.text


# ---------------------------------------------------------------- when they play


def test_recording_is_on_while_active_or_an_utterance_is_open() -> None:
    assert not DictationFacts().recording
    assert DictationFacts(active=True).recording
    assert DictationFacts(speaking=True).recording  # a released key's tail
    assert not DictationFacts(outstanding=frozenset({1})).recording  # waiting for text only


class NoTyping:
    def type_final(self, text: str) -> None:
        pass


class Recorder:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.changes: list[tuple[bool, float, DictationFacts]] = []
        coordinator.recording_changed.connect(self._on)

    def _on(self, recording: bool) -> None:
        self.changes.append((recording, time.monotonic(), self.coordinator.facts))


def test_push_to_talk_stop_cue_waits_until_the_utterance_is_closed(qtbot) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    audio = np.round(rng.normal(0, 300, 16_000 * 6)).astype(np.int16)
    settings = replace(Settings(), server_url="ws://127.0.0.1:9", mode="push_to_talk")
    coordinator = Coordinator(
        settings,
        typer=NoTyping(),
        source_factory=lambda s: ArraySource(audio, realtime=True),
        detector_factory=lambda: ScriptedDetector([], default=0.95),  # all speech
    )
    recorder = Recorder(coordinator)
    coordinator.start()  # warm microphone: no cue yet
    try:
        qtbot.wait(300)
        assert recorder.changes == []
        coordinator.talk_pressed()
        assert [c[0] for c in recorder.changes] == [True]  # at once, on the key press
        qtbot.waitUntil(lambda: coordinator.facts.speaking, timeout=3000)
        released = time.monotonic()
        coordinator.talk_released()
        assert len(recorder.changes) == 1, "the release tail is still being recorded"
        qtbot.waitUntil(lambda: len(recorder.changes) == 2, timeout=3000)
    finally:
        coordinator.shutdown()
    stopped, at, facts = recorder.changes[1]
    assert not stopped
    assert not facts.speaking and facts.outstanding, "the utterance was closed and sent"
    assert at - released >= 0.25, "after the 320 ms release tail"


def test_hands_free_cues_mark_switching_on_and_off_only(qtbot) -> None:  # type: ignore[no-untyped-def]
    speech_then_pause = [0.95] * 40 + [0.02] * 40  # ~1.3 s speech, ~1.3 s pause, repeated
    audio = np.zeros(16_000 * 8, np.int16)
    settings = replace(Settings(), server_url="ws://127.0.0.1:9", mode="hands_free")
    coordinator = Coordinator(
        settings,
        typer=NoTyping(),
        source_factory=lambda s: ArraySource(audio, realtime=False),
        detector_factory=lambda: ScriptedDetector(speech_then_pause * 3),
    )
    recorder = Recorder(coordinator)
    stages: list[Stage] = []
    coordinator.stage_changed.connect(stages.append)
    coordinator.start()
    try:
        coordinator.toggle_dictation()
        qtbot.waitUntil(lambda: len(coordinator.facts.outstanding) >= 2, timeout=5000)
        coordinator.toggle_dictation()
    finally:
        coordinator.shutdown()
    assert stages.count(Stage.SPEAKING) >= 2, "utterances opened and closed meanwhile"
    assert [c[0] for c in recorder.changes] == [True, False]
