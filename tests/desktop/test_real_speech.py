"""Real recordings through the real Silero VAD and the pipeline (as fast as possible)."""

from __future__ import annotations

import numpy as np
import pytest

from desktop.audio.pipeline import AudioPipeline
from desktop.audio.segmenter import EndReason, Mode, Segmenter
from desktop.audio.source import ArraySource
from desktop.audio.vad import SileroVad
from tests.desktop.helpers import Collector, find_exact, room_noise, speech, speech_region

ALL = [
    "ps_cards_001",
    "ps_cards_002",
    "ps_cards_003",
    "ps_cards_004",
    "ps_cards_005",
    "ps_0880",
    "ps_goforward",
    "ps_forever2",
    "ps_0930",
    "ps_0870",
    "ps_0890",
    "ps_0920",
]
PRE_ROLL = 7680  # 480 ms default


def run_pipeline(vad: SileroVad, audio: np.ndarray, seg: Segmenter | None = None) -> Collector:
    col = Collector()
    pipeline = AudioPipeline(ArraySource(audio), seg or Segmenter(), vad, col)
    pipeline.run()
    assert pipeline.error is None
    return col


def test_one_utterance_per_recording_with_every_speech_sample_and_pre_roll(
    silero: SileroVad,
) -> None:
    parts, regions = [room_noise(1.0, seed=0)], []
    pos = len(parts[0])
    for k, name in enumerate(ALL):
        rec = speech(name)
        on, off = speech_region(silero, rec)
        regions.append((name, pos, pos + len(rec), pos + on, pos + off))
        gap = room_noise(1.5, seed=k + 1)
        parts += [rec, gap]
        pos += len(rec) + len(gap)
    audio = np.concatenate(parts)

    col = run_pipeline(silero, audio)

    assert not col.dropped
    assert len(col.utterances) == len(ALL)
    for u, (name, rec_start, rec_end, on, off) in zip(col.utterances, regions, strict=True):
        assert u.ended is not None and u.ended.reason is EndReason.SILENCE, name
        s, e = u.started.start_sample, u.ended.end_sample
        assert rec_start < e and s < rec_end, f"{name}: utterance is elsewhere"
        # bit-exact, contiguous, and found at that one place only
        np.testing.assert_array_equal(u.audio, audio[s:e])
        assert find_exact(audio, u.audio) == [s]
        # the pre-roll is exactly 480 ms before the first speech chunk...
        assert u.started.trigger_sample - s == PRE_ROLL
        # ...so every speech sample is inside, with most of the pre-roll ahead of it
        assert on - s >= 400 * 16, f"{name}: only {(on - s) / 16:.0f} ms before speech"
        assert e - off >= 100 * 16, f"{name}: only {(e - off) / 16:.0f} ms after speech"


@pytest.mark.parametrize(
    "kind", ["zeros", "room", "white", "loud_white", "tone440", "tone1k", "sweep"]
)
def test_silence_noise_and_tones_open_no_utterance(silero: SileroVad, kind: str) -> None:
    n = 16000 * 4
    t = np.arange(n) / 16000
    rng = np.random.default_rng(7)
    signals = {
        "zeros": np.zeros(n),
        "room": room_noise(4.0, seed=3) / 32768,
        "white": rng.normal(0, 0.1, n),
        "loud_white": rng.normal(0, 0.3, n),
        "tone440": 0.3 * np.sin(2 * np.pi * 440 * t),
        "tone1k": 0.5 * np.sin(2 * np.pi * 1000 * t),
        "sweep": 0.3 * np.sin(2 * np.pi * (100 + 1000 * t) * t),  # 100 Hz → 8 kHz
    }
    audio = np.round(np.clip(signals[kind], -1, 1) * 32767).astype(np.int16)
    col = run_pipeline(silero, audio)
    assert col.utterances == [] and col.dropped == []


def test_push_to_talk_on_real_speech(silero: SileroVad) -> None:
    """Key pressed 100 ms after the speech began and released before its end: the
    pre-roll catches the start, the release tail the end; a press over silence sends
    nothing."""
    rec = speech("ps_cards_003")
    on, off = speech_region(silero, rec)
    lead = room_noise(1.0, seed=11)
    audio = np.concatenate([lead, rec, room_noise(1.5, seed=12), room_noise(1.0, seed=13)])
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    col = Collector()
    pipeline = AudioPipeline(ArraySource(audio), seg, silero, col)
    # Drive it by hand so the presses fall at known sample positions.
    press_at = len(lead) + on + 1600
    release_at = len(lead) + off - 1600
    silent_press = len(lead) + len(rec) + 16000
    pipeline.source.start()
    for i in range(0, len(audio) - 511, 512):
        if i == press_at // 512 * 512:
            col.extend(seg.press())
        if i == release_at // 512 * 512:
            col.extend(seg.release())
        if i == silent_press // 512 * 512:
            col.extend(seg.press())
        if i == (silent_press + 8000) // 512 * 512:
            col.extend(seg.release())
        pipeline._process(audio[i : i + 512])
    col.extend(seg.flush())
    (u,) = col.utterances
    s, e = u.started.start_sample, u.ended.end_sample if u.ended else -1
    np.testing.assert_array_equal(u.audio, audio[s:e])
    assert s <= len(lead) + on and e >= len(lead) + off
    (d,) = col.dropped
    assert d.reason.value == "no_speech"
