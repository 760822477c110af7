"""Segmenter logic with scripted speech probabilities: exact sample ranges."""

from __future__ import annotations

import random

import numpy as np
import pytest

from desktop.audio.segmenter import (
    AudioChunk,
    DropReason,
    EndReason,
    Mode,
    Segmenter,
    SegmenterConfig,
    SegmenterState,
    UtteranceDropped,
    UtteranceEnded,
    UtteranceStarted,
    stamp,
)
from desktop.audio.vad import ScriptedDetector
from tests.desktop.helpers import Collector

C = 512  # samples per chunk
SR = 16_000


def ms(n_chunks: float) -> float:
    return n_chunks * C * 1000 / SR


def signal(n_samples: int, seed: int = 0) -> np.ndarray:
    """Distinct-looking int16 samples (full range, both signs) so offsets can't alias."""
    return np.random.default_rng(seed).integers(-32768, 32768, n_samples, dtype=np.int16)


def run(
    seg: Segmenter,
    probs: list[float],
    audio: np.ndarray | None = None,
    actions: dict[int, str] | None = None,
    flush: bool = True,
) -> tuple[Collector, np.ndarray]:
    """Feed one chunk per probability; ``actions[i]`` ('press', 'release', 'tap',
    'toggle', 'cancel') runs before chunk i."""
    if audio is None:
        audio = signal(len(probs) * C)
    col = Collector()
    actions = actions or {}
    for i, p in enumerate(probs):
        if i in actions:
            col.extend(getattr(seg, actions[i])())
        col.extend(seg.feed(audio[i * C : (i + 1) * C], p))
    if len(probs) in actions:
        col.extend(getattr(seg, actions[len(probs)])())
    if flush:
        col.extend(seg.flush())
    return col, audio


# Default config in chunks: pre-roll 15, min speech 6, min silence 17.5, tail 8,
# release tail 10.


def test_defaults_in_chunks() -> None:
    c = SegmenterConfig()
    assert (c.pre_roll_ms, c.tail_ms, c.release_tail_ms) == (ms(15), ms(8), ms(10))
    assert c.min_speech_ms == ms(6)
    assert c.effective_neg_threshold == pytest.approx(0.35)


def test_hands_free_exact_pre_roll_and_tail() -> None:
    seg = Segmenter()
    probs = [0.0] * 30 + [0.9] * 20 + [0.0] * 30
    col, audio = run(seg, probs)
    assert len(col.utterances) == 1 and not col.dropped
    u = col.utterances[0]
    assert u.started.trigger_sample == 30 * C
    assert u.started.start_sample == 15 * C
    assert u.started.pre_roll_samples == 7680
    assert u.ended is not None
    assert u.ended.reason is EndReason.SILENCE
    assert u.ended.speech_end_sample == 50 * C
    assert u.ended.end_sample == 50 * C + 4096  # tail, not the whole silence
    # min silence 8960 samples = 17.5 chunks → decided at the end of the 18th silent chunk
    assert u.ended.detected_at_sample == 68 * C
    assert u.ended.decision_delay_s == pytest.approx(18 * C / SR)
    np.testing.assert_array_equal(u.audio, audio[15 * C : 50 * C + 4096])


def test_start_is_emitted_only_after_min_speech() -> None:
    seg = Segmenter()
    audio = signal(40 * C)
    col = Collector()
    for i in range(20):
        col.extend(seg.feed(audio[i * C : (i + 1) * C], 0.0))
    for i in range(20, 25):
        assert seg.feed(audio[i * C : (i + 1) * C], 0.9) == []
        assert seg.state is SegmenterState.PENDING
    events = seg.feed(audio[25 * C : 26 * C], 0.9)  # 6th speech chunk = 192 ms
    assert isinstance(events[0], UtteranceStarted)
    assert seg.state is SegmenterState.ACTIVE
    col.extend(events)
    # the burst holds pre-roll + the six speech chunks, in pieces of at most 200 ms
    assert all(isinstance(e, AudioChunk) and e.num_samples <= 3200 for e in events[1:])
    np.testing.assert_array_equal(col.utterances[0].audio, audio[5 * C : 26 * C])
    # then every further chunk goes out as it arrives
    events = seg.feed(audio[26 * C : 27 * C], 0.9)
    assert len(events) == 1 and isinstance(events[0], AudioChunk)
    assert events[0].pcm == audio[26 * C : 27 * C].astype("<i2").tobytes()


def test_pre_roll_clamped_at_stream_start() -> None:
    col, audio = run(Segmenter(), [0.0] * 3 + [0.9] * 10 + [0.0] * 30)
    u = col.utterances[0]
    assert u.started.start_sample == 0 and u.started.trigger_sample == 3 * C
    np.testing.assert_array_equal(u.audio, audio[: 13 * C + 4096])


def test_configurable_pre_roll_and_tail() -> None:
    cfg = SegmenterConfig(pre_roll_ms=100, tail_ms=10, min_silence_ms=300, min_speech_ms=0)
    col, audio = run(Segmenter(cfg), [0.0] * 20 + [0.8] * 5 + [0.0] * 20)
    u = col.utterances[0]
    assert u.started.start_sample == 20 * C - 1600
    assert u.ended is not None and u.ended.end_sample == 25 * C + 160
    np.testing.assert_array_equal(u.audio, audio[20 * C - 1600 : 25 * C + 160])


def test_short_pause_does_not_end_and_held_back_silence_is_sent_when_speech_resumes() -> None:
    # 15 silent chunks (480 ms) < 560 ms min silence
    probs = [0.0] * 20 + [0.9] * 10 + [0.0] * 15 + [0.9] * 10 + [0.0] * 30
    seg = Segmenter()
    col, audio = run(seg, probs)
    assert len(col.utterances) == 1
    u = col.utterances[0]
    np.testing.assert_array_equal(u.audio, audio[5 * C : 55 * C + 4096])


def test_pause_longer_than_min_silence_splits_without_sending_a_sample_twice() -> None:
    probs = [0.0] * 20 + [0.9] * 10 + [0.0] * 20 + [0.9] * 10 + [0.0] * 30
    col, audio = run(Segmenter(), probs)
    assert [u.ended.reason for u in col.utterances if u.ended] == [EndReason.SILENCE] * 2
    first, second = col.utterances
    assert first.ended is not None
    assert first.ended.end_sample == 30 * C + 4096
    # the second pre-roll would reach back to 35*C but the first sent up to 38*C
    assert second.started.start_sample == 30 * C + 4096
    np.testing.assert_array_equal(second.audio, audio[30 * C + 4096 : 60 * C + 4096])


def test_hysteresis_between_thresholds() -> None:
    # 0.4 is neither speech (>= 0.5) nor silence (< 0.35): it neither starts nor ends
    col, _ = run(Segmenter(), [0.4] * 50)
    assert not col.utterances and not col.dropped
    probs = [0.0] * 20 + [0.9] * 10 + [0.4] * 40 + [0.0] * 30
    col, _ = run(Segmenter(), probs)
    (u,) = col.utterances
    assert u.ended is not None
    assert u.ended.speech_end_sample == 30 * C  # last chunk at or above the threshold
    assert u.ended.end_sample == 70 * C + 4096  # silence began at the first chunk < 0.35
    assert u.ended.detected_at_sample == 88 * C


def test_blip_shorter_than_min_speech_is_dropped_unsent() -> None:
    col, _ = run(Segmenter(), [0.0] * 20 + [0.9] * 5 + [0.0] * 30)
    assert not col.utterances
    (d,) = col.dropped
    assert d.reason is DropReason.TOO_SHORT and d.speech_samples == 5 * C
    assert not any(isinstance(e, AudioChunk) for e in col.events)


def test_speech_right_after_a_dropped_blip_still_gets_full_pre_roll() -> None:
    probs = [0.0] * 20 + [0.9] * 2 + [0.0] * 25 + [0.9] * 10 + [0.0] * 30
    col, audio = run(Segmenter(), probs)
    assert len(col.dropped) == 1
    (u,) = col.utterances
    assert u.started.start_sample == 47 * C - 7680  # the dropped blip's audio was not sent
    np.testing.assert_array_equal(u.audio, audio[47 * C - 7680 : 57 * C + 4096])


def test_soft_max_splits_at_first_pause_and_continues_contiguously() -> None:
    cfg = SegmenterConfig(soft_max_ms=ms(40), max_utterance_ms=ms(200), split_silence_ms=ms(2))
    # a 1-chunk pause at 30 is before the soft limit; 2-chunk pause at 60 after it
    probs = [0.0] * 20 + [0.9] * 10 + [0.1] + [0.9] * 29 + [0.1] * 2 + [0.9] * 20 + [0.0] * 30
    col, audio = run(Segmenter(cfg), probs)
    first, second = col.utterances
    assert first.ended is not None and first.ended.reason is EndReason.MAX_LENGTH
    assert first.ended.end_sample == 62 * C  # cut inside the pause
    assert second.started.start_sample == 62 * C
    assert second.ended is not None and second.ended.reason is EndReason.SILENCE
    joined = np.concatenate([first.audio, second.audio])
    np.testing.assert_array_equal(joined, audio[5 * C : 82 * C + 4096])


def test_soft_split_in_hands_free_sends_no_more_silence_than_the_tail() -> None:
    cfg = SegmenterConfig(
        soft_max_ms=ms(40), max_utterance_ms=ms(200), split_silence_ms=ms(12), tail_ms=ms(4)
    )
    probs = [0.0] * 20 + [0.9] * 40 + [0.0] * 30
    col, audio = run(Segmenter(cfg), probs)
    (u,) = col.utterances
    assert u.ended is not None and u.ended.reason is EndReason.MAX_LENGTH
    assert u.ended.detected_at_sample == 72 * C
    np.testing.assert_array_equal(u.audio, audio[5 * C : 64 * C])


def test_hard_max_splits_mid_speech_and_loses_nothing() -> None:
    cfg = SegmenterConfig(soft_max_ms=ms(40), max_utterance_ms=ms(40))
    probs = [0.0] * 20 + [0.9] * 150 + [0.0] * 30
    col, audio = run(Segmenter(cfg), probs)
    assert len(col.utterances) >= 4
    for u in col.utterances:
        assert u.ended is not None
        assert len(u.audio) <= 40 * C
    reasons = [u.ended.reason for u in col.utterances if u.ended]
    assert reasons[:-1] == [EndReason.MAX_LENGTH] * (len(reasons) - 1)
    assert reasons[-1] is EndReason.SILENCE
    for a, b in zip(col.utterances, col.utterances[1:], strict=False):
        assert a.ended is not None and b.started.start_sample == a.ended.end_sample
    joined = np.concatenate([u.audio for u in col.utterances])
    np.testing.assert_array_equal(joined, audio[5 * C : 170 * C + 4096])


def test_push_to_talk_pre_roll_before_press_and_tail_after_release() -> None:
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    probs = [0.0] * 45 + [0.9] * 15 + [0.0] * 40
    col, audio = run(seg, probs, actions={40: "press", 65: "release"})
    (u,) = col.utterances
    assert u.started.trigger_sample == 40 * C
    assert u.started.start_sample == 40 * C - 7680
    assert u.ended is not None and u.ended.reason is EndReason.RELEASED
    assert u.ended.end_sample == 65 * C + 5120  # 320 ms after release
    assert u.ended.detected_at_sample == 75 * C
    np.testing.assert_array_equal(u.audio, audio[40 * C - 7680 : 65 * C + 5120])


def test_push_to_talk_speech_at_the_very_end_of_the_tail_is_kept() -> None:
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    # speech only in the last chunk of the release tail
    probs = [0.0] * 30 + [0.0] * 9 + [0.9] + [0.0] * 10
    col, audio = run(seg, probs, actions={20: "press", 30: "release"})
    (u,) = col.utterances
    np.testing.assert_array_equal(u.audio, audio[5 * C : 40 * C])


def test_push_to_talk_without_speech_is_dropped_and_nothing_is_sent() -> None:
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    probs = [0.9] * 20 + [0.2] * 40  # speech only before the press (in the pre-roll)
    col, _ = run(seg, probs, actions={20: "press", 40: "release"})
    assert col.utterances == []
    (d,) = col.dropped
    assert d.reason is DropReason.NO_SPEECH
    assert not any(isinstance(e, (UtteranceStarted, AudioChunk)) for e in col.events)
    assert seg.state is SegmenterState.IDLE


def test_push_to_talk_ignores_vad_while_idle_and_while_held() -> None:
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    # speech before the press opens nothing; a long silence while held does not end it
    probs = [0.9] * 20 + [0.0] * 10 + [0.9] * 5 + [0.0] * 60
    col, audio = run(seg, probs, actions={30: "press", 90: "release"})
    (u,) = col.utterances
    np.testing.assert_array_equal(u.audio, audio[15 * C : 95 * C])


def test_push_to_talk_repress_during_tail_closes_first_at_the_press() -> None:
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    probs = [0.0] * 10 + [0.9] * 5 + [0.0] * 3 + [0.9] * 5 + [0.0] * 20
    col, audio = run(seg, probs, actions={8: "press", 15: "release", 17: "press", 25: "release"})
    first, second = col.utterances
    assert first.ended is not None and first.ended.end_sample == 17 * C
    assert second.started.start_sample == 17 * C
    joined = np.concatenate([first.audio, second.audio])
    np.testing.assert_array_equal(joined, audio[0 : 35 * C])


def test_push_to_talk_tap_keeps_speech_fed_after_it_within_the_tail() -> None:
    """The key-up reaches the segmenter before the audio of the word: judged at the end
    of the tail, the tap keeps it, from its pre-roll to the end of the tail."""
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    probs = [0.0] * 22 + [0.9] * 4 + [0.0] * 20  # tap at chunk 22, tail to chunk 32
    col, audio = run(seg, probs, actions={20: "press", 22: "tap"})
    (u,) = col.utterances
    assert u.started.trigger_sample == 20 * C
    assert u.ended is not None and u.ended.reason is EndReason.RELEASED
    assert u.ended.end_sample == 32 * C
    np.testing.assert_array_equal(u.audio, audio[20 * C - 7680 : 32 * C])
    assert col.dropped == []


def test_push_to_talk_tap_with_only_silence_through_the_tail_is_cancelled() -> None:
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    audio = signal(40 * C)
    col = Collector()
    for i in range(40):
        if i == 20:
            col.extend(seg.press())
        if i == 22:
            assert seg.tap() == []  # not judged yet: the tail is still to come
        events = seg.feed(audio[i * C : (i + 1) * C], 0.2)
        assert events == [] or i == 31, i
        col.extend(events)
    assert col.utterances == []
    (d,) = col.dropped
    assert d.reason is DropReason.CANCELLED  # what a cancel at the key-up gave
    assert (d.start_sample, d.end_sample, d.speech_samples) == (5 * C, 32 * C, 0)
    assert seg.state is SegmenterState.IDLE and not seg.pressed


def test_push_to_talk_speech_only_after_the_tail_of_a_tap_opens_nothing() -> None:
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    probs = [0.0] * 32 + [0.9] * 10 + [0.0] * 10
    col, _ = run(seg, probs, actions={20: "press", 22: "tap"})
    assert col.utterances == []
    assert [d.reason for d in col.dropped] == [DropReason.CANCELLED]


def test_push_to_talk_tap_and_release_share_one_rule() -> None:
    """With speech the two key-ups give the same events; without, the tap is cancelled
    where the release is dropped as having no speech."""
    for probs in ([0.0] * 22 + [0.9] * 4 + [0.0] * 20, [0.0] * 46):
        by_tap, _ = run(Segmenter(mode=Mode.PUSH_TO_TALK), probs, actions={20: "press", 22: "tap"})
        by_release, _ = run(
            Segmenter(mode=Mode.PUSH_TO_TALK), probs, actions={20: "press", 22: "release"}
        )
        if by_release.utterances:
            assert by_tap.events == by_release.events
        else:
            assert [d.reason for d in by_release.dropped] == [DropReason.NO_SPEECH]
            assert [d.reason for d in by_tap.dropped] == [DropReason.CANCELLED]


@pytest.mark.parametrize("speech", [False, True])
def test_push_to_talk_press_again_during_a_taps_tail(speech: bool) -> None:
    """The tap is judged at the new press on what was fed so far; the new press keeps its
    pre-roll back to the tap's key-up, but not the cancelled press's audio."""
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    probs = [0.0] * 23 + [0.9 if speech else 0.0] + [0.0] * 2 + [0.9] * 5 + [0.0] * 20
    col, audio = run(seg, probs, actions={20: "press", 22: "tap", 26: "press", 31: "release"})
    if speech:
        first, second = col.utterances
        assert first.ended is not None and first.ended.reason is EndReason.RELEASED
        assert first.ended.end_sample == 26 * C
        assert second.started.start_sample == 26 * C
    else:
        (second,) = col.utterances
        (d,) = col.dropped
        assert d.reason is DropReason.CANCELLED and d.end_sample == 26 * C
        assert second.started.start_sample == 22 * C  # the floor a cancel at the tap set
    assert second.ended is not None and second.ended.end_sample == 41 * C
    np.testing.assert_array_equal(second.audio, audio[second.started.start_sample : 41 * C])


@pytest.mark.parametrize(
    ("close", "speech", "expected"),
    [
        ("cancel", True, EndReason.CANCELLED),
        ("cancel", False, DropReason.CANCELLED),
        ("set_mode", True, EndReason.MODE_CHANGED),
        ("set_mode", False, DropReason.CANCELLED),
        ("flush", True, EndReason.STREAM_END),
        ("flush", False, DropReason.CANCELLED),
    ],
)
def test_push_to_talk_tap_closed_during_its_tail(
    close: str, speech: bool, expected: EndReason | DropReason
) -> None:
    """A cancel, a mode change or the end of the stream before the tail is complete: the
    tap is judged on what was fed until then."""
    seg = Segmenter(mode=Mode.PUSH_TO_TALK)
    probs = [0.0] * 23 + [0.9 if speech else 0.0] + [0.0] * 2  # the tail is not over
    col, _ = run(seg, probs, actions={20: "press", 22: "tap"}, flush=False)
    if close == "set_mode":
        col.extend(seg.set_mode(Mode.HANDS_FREE))
    else:
        col.extend(getattr(seg, close)())
    assert seg.state is SegmenterState.IDLE
    if isinstance(expected, EndReason):
        (u,) = col.utterances
        assert u.ended is not None and u.ended.reason is expected
        assert col.dropped == []
    else:
        assert col.utterances == []
        assert [d.reason for d in col.dropped] == [expected]
        assert not any(isinstance(e, (UtteranceStarted, AudioChunk)) for e in col.events)


def test_push_to_talk_long_hold_without_speech_keeps_listening() -> None:
    cfg = SegmenterConfig(soft_max_ms=ms(50), max_utterance_ms=ms(50))
    seg = Segmenter(cfg, mode=Mode.PUSH_TO_TALK)
    probs = [0.0] * 100 + [0.9] * 5 + [0.0] * 20
    col, audio = run(seg, probs, actions={0: "press", 110: "release"})
    assert len(col.dropped) >= 2
    assert all(d.reason is DropReason.NO_SPEECH for d in col.dropped)
    (u,) = col.utterances
    # the candidate that caught the speech still has its pre-roll
    assert u.started.start_sample <= 100 * C - 7680 or u.started.start_sample == 0
    assert u.ended is not None and u.ended.end_sample == 120 * C
    np.testing.assert_array_equal(u.audio, audio[u.started.start_sample : 120 * C])


def test_toggle_mode() -> None:
    seg = Segmenter(mode=Mode.TOGGLE)
    probs = [0.0] * 20 + [0.9] * 10 + [0.0] * 60
    col, audio = run(seg, probs, actions={18: "toggle", 40: "toggle", 70: "toggle"}, flush=False)
    assert seg.pressed  # the third toggle latched it again
    col.extend(seg.flush())
    first, *rest = col.utterances
    assert first.ended is not None and first.ended.reason is EndReason.RELEASED
    np.testing.assert_array_equal(first.audio, audio[3 * C : 50 * C])
    # the third toggle opened a candidate that heard no speech: dropped at flush
    assert rest == [] and col.dropped[-1].reason is DropReason.NO_SPEECH


def test_manual_min_speech_with_zero_release_tail() -> None:
    cfg = SegmenterConfig(release_tail_ms=0, manual_min_speech_ms=ms(3))
    seg = Segmenter(cfg, mode=Mode.PUSH_TO_TALK)
    probs = [0.0] * 20 + [0.9] * 2 + [0.0] * 10
    col, _ = run(seg, probs, actions={18: "press", 25: "release"})
    assert col.utterances == []
    assert col.dropped[0].reason is DropReason.TOO_SHORT
    assert col.dropped[0].end_sample == 25 * C


def test_press_is_ignored_in_hands_free_mode() -> None:
    seg = Segmenter()
    assert seg.press() == [] and not seg.pressed
    assert seg.release() == []


def test_cancel_active_and_pending() -> None:
    seg = Segmenter()
    audio = signal(100 * C)
    col = Collector()
    for i in range(30):
        col.extend(seg.feed(audio[i * C : (i + 1) * C], 0.9 if i >= 10 else 0.0))
    col.extend(seg.cancel())
    (u,) = col.utterances
    assert u.ended is not None and u.ended.reason is EndReason.CANCELLED
    assert u.ended.end_sample == 30 * C
    for i in range(30, 33):  # speech goes on: a new candidate, without the cancelled audio
        col.extend(seg.feed(audio[i * C : (i + 1) * C], 0.9))
    assert seg.state is SegmenterState.PENDING
    col.extend(seg.cancel())
    assert col.dropped[-1].reason is DropReason.CANCELLED


def test_set_mode_ends_utterance_and_flush_closes_stream() -> None:
    seg = Segmenter()
    audio = signal(60 * C)
    col = Collector()
    for i in range(30):
        col.extend(seg.feed(audio[i * C : (i + 1) * C], 0.9 if i >= 10 else 0.0))
    col.extend(seg.set_mode(Mode.PUSH_TO_TALK))
    assert col.utterances[0].ended is not None
    assert col.utterances[0].ended.reason is EndReason.MODE_CHANGED
    assert seg.mode is Mode.PUSH_TO_TALK
    col.extend(seg.press())
    for i in range(30, 40):
        col.extend(seg.feed(audio[i * C : (i + 1) * C], 0.9))
    col.extend(seg.flush())
    second = col.utterances[1]
    assert second.ended is not None and second.ended.reason is EndReason.STREAM_END
    np.testing.assert_array_equal(second.audio, audio[30 * C : 40 * C])


def test_detector_is_used_when_no_probability_given() -> None:
    det = ScriptedDetector([0.0] * 20 + [0.9] * 10)
    seg = Segmenter(detector=det)
    audio = signal(60 * C)
    col = Collector()
    for i in range(60):
        col.extend(seg.feed(audio[i * C : (i + 1) * C]))
    assert det.calls == 60
    assert len(col.utterances) == 1 and col.utterances[0].ended is not None
    with pytest.raises(ValueError):
        Segmenter().feed(audio[:C])


def test_odd_chunk_sizes_stay_bit_exact() -> None:
    seg = Segmenter(SegmenterConfig(pre_roll_ms=100, tail_ms=50, min_speech_ms=0))
    audio = signal(30_000)
    col = Collector()
    pos, sizes = 0, [7, 300, 1000, 512, 33]
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 40
    for i, p in enumerate(probs):
        n = sizes[i % len(sizes)]
        col.extend(seg.feed(audio[pos : pos + n], p))
        pos += n
    (u,) = col.utterances
    s = u.started.start_sample
    assert u.started.trigger_sample - s == 1600
    np.testing.assert_array_equal(u.audio, audio[s : s + len(u.audio)])


@pytest.mark.parametrize("seed", range(40))
def test_random_scripts_keep_the_contract(seed: int) -> None:
    """Any probability script and key timing: grammar, contiguity and bit-exactness hold,
    no sample is sent twice, and every speech chunk is either sent or in a dropped
    candidate."""
    rng = random.Random(seed)
    mode = rng.choice(list(Mode))
    cfg = SegmenterConfig(
        pre_roll_ms=rng.choice([0, 64, 480]),
        min_silence_ms=rng.choice([100, 560]),
        min_speech_ms=rng.choice([0, 192]),
        tail_ms=rng.choice([0, 256]),
        release_tail_ms=rng.choice([0, 320]),
        soft_max_ms=rng.choice([500, 3000]),
        max_utterance_ms=3000,
    )
    seg = Segmenter(cfg, mode=mode)
    n = 400
    probs: list[float] = []
    while len(probs) < n:
        probs += [rng.choice([0.0, 0.2, 0.4, 0.6, 0.95])] * rng.randint(1, 30)
    probs = probs[:n]
    actions = {
        i: rng.choice(["press", "release", "tap", "toggle"])
        for i in range(n)
        if rng.random() < 0.05
    }
    if rng.random() < 0.2:
        actions[rng.randrange(n)] = "cancel"
    col, audio = run(seg, probs, actions=actions)
    sent = np.zeros(n * C, dtype=bool)
    for u in col.utterances:
        assert u.ended is not None
        s = u.started.start_sample
        np.testing.assert_array_equal(u.audio, audio[s : s + len(u.audio)])
        assert not sent[s : s + len(u.audio)].any()
        sent[s : s + len(u.audio)] = True
        assert len(u.audio) <= 3000 * SR // 1000
    if mode is Mode.HANDS_FREE and "cancel" not in actions.values():
        dropped = np.zeros(n * C, dtype=bool)
        for d in col.dropped:
            dropped[d.start_sample : d.end_sample] = True
        for i, p in enumerate(probs):
            if p >= 0.5:
                assert (sent[i * C : (i + 1) * C] | dropped[i * C : (i + 1) * C]).all(), i


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SegmenterConfig(threshold=0)
    with pytest.raises(ValueError):
        SegmenterConfig(neg_threshold=0.9)
    with pytest.raises(ValueError):
        SegmenterConfig(soft_max_ms=5000, max_utterance_ms=1000)
    with pytest.raises(ValueError):
        SegmenterConfig(min_silence_ms=0)
    with pytest.raises(ValueError):
        Segmenter().feed(np.zeros(0, dtype=np.int16), 0.0)


def test_stamp_sets_clock_time_on_start_and_end_only() -> None:
    s = UtteranceStarted(1, 0, 10, Mode.HANDS_FREE)
    assert stamp(s, 5.0) == UtteranceStarted(1, 0, 10, Mode.HANDS_FREE, detected_at=5.0)
    e = UtteranceEnded(1, EndReason.SILENCE, 0, 10, 5, 9)
    assert stamp(e, 6.0).detected_at == 6.0  # type: ignore[union-attr]
    c = AudioChunk(1, 0, b"\0\0")
    assert stamp(c, 1.0) is c
    d = UtteranceDropped(2, DropReason.NO_SPEECH, 0, 10, 0)
    assert stamp(d, 1.0) is d
