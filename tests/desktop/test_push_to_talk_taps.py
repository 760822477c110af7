"""Push-to-talk keeps short words: a press shorter than the debouncer's minimum hold (a
TAP) is sent when the VAD heard speech in it, and dropped when it heard none. The tap is
judged at the end of its release tail, on all the audio it recorded: the key reaches the
audio thread before blocks the device captured during the press have been processed.

The pipeline runs on the test's own thread (``run()``, no sleeps): the key commands are
queued by the source at exact positions in the audio, as the hotkey thread would queue
them while the audio thread reads.
"""

from __future__ import annotations

from collections.abc import Callable

from desktop.audio.pipeline import AudioPipeline
from desktop.audio.segmenter import DropReason, EndReason, Mode, Segmenter, SegmenterConfig
from desktop.audio.source import ArraySource, Int16Array
from desktop.audio.vad import VAD_CHUNK_SAMPLES, ScriptedDetector
from tests.desktop.helpers import Collector, room_noise

CHUNK_MS = 32


class KeyedSource(ArraySource):
    """Audio in 32 ms blocks; ``at[k]`` runs just after block ``k`` has been read (the
    pipeline applies what it queues before the next block)."""

    def __init__(self, samples: Int16Array, at: dict[int, Callable[[], None]]) -> None:
        super().__init__(samples, block_samples=VAD_CHUNK_SAMPLES)
        self.at = at
        self.blocks = 0

    def read(self, timeout: float | None = None) -> Int16Array | None:
        block = super().read(timeout)
        self.blocks += 1
        if self.blocks in self.at:
            self.at.pop(self.blocks)()
        return block


def run_press(probabilities: list[float], release_after_chunks: int, *, tap: bool) -> Collector:
    """Press before the first chunk, release (as a TAP or a plain RELEASE) after
    ``release_after_chunks`` chunks; 1.5 s of audio in all."""
    n = 1_500 // CHUNK_MS
    collector = Collector()
    segmenter = Segmenter(SegmenterConfig(), Mode.PUSH_TO_TALK)
    source = KeyedSource(room_noise(n * CHUNK_MS / 1000, seed=3), {})
    pipeline = AudioPipeline(source, segmenter, ScriptedDetector(probabilities), collector)
    source.at[release_after_chunks] = pipeline.tap if tap else pipeline.release
    pipeline.press()
    pipeline.run()
    assert pipeline.error is None
    return collector


def test_a_150_ms_yes_is_sent() -> None:
    yes = [0.9] * 5  # 160 ms of speech, the key up after 5 chunks
    collector = run_press(yes + [0.02] * 60, release_after_chunks=5, tap=True)
    (utterance,) = collector.utterances
    assert utterance.ended is not None and utterance.ended.reason is EndReason.RELEASED
    assert len(utterance.audio) >= 5 * VAD_CHUNK_SAMPLES, "the word and the release tail"
    assert collector.dropped == []


def test_a_yes_not_yet_processed_when_the_tap_arrives_is_sent() -> None:
    """The tap reaches the audio thread when only the first 32 ms block of the press has
    been processed; the word is in the blocks still waiting (a device buffer, a loaded
    machine). It is judged with them, and sent."""
    yes = [0.9] * 4
    collector = run_press([0.02] + yes + [0.02] * 60, release_after_chunks=1, tap=True)
    (utterance,) = collector.utterances
    assert utterance.ended is not None and utterance.ended.reason is EndReason.RELEASED
    assert utterance.started.trigger_sample == 0
    # from the press to the end of the release tail (320 ms after the tap)
    assert utterance.ended.end_sample == (1 + 10) * VAD_CHUNK_SAMPLES
    assert collector.dropped == []


def test_a_tap_without_speech_is_dropped_at_the_end_of_its_tail() -> None:
    collector = run_press([0.02] * 60, release_after_chunks=5, tap=True)
    assert collector.utterances == []
    (dropped,) = collector.dropped
    assert dropped.reason is DropReason.CANCELLED
    assert dropped.end_sample == (5 + 10) * VAD_CHUNK_SAMPLES


def test_speech_only_after_the_tail_of_a_tap_does_not_revive_it() -> None:
    """The user brushed the key, then spoke to someone once the release tail was over:
    that speech is not the press's, and nothing is sent."""
    probabilities = [0.02] * (5 + 10) + [0.9] * 20 + [0.02] * 40
    collector = run_press(probabilities, release_after_chunks=5, tap=True)
    assert collector.utterances == []
    assert [d.reason for d in collector.dropped] == [DropReason.CANCELLED]


def test_a_hold_released_normally_still_keeps_speech_in_its_tail() -> None:
    """Unchanged for a RELEASE: speech in the release tail belongs to the utterance."""
    collector = run_press([0.02] * 10 + [0.9] * 5 + [0.02] * 40, release_after_chunks=10, tap=False)
    (utterance,) = collector.utterances
    assert utterance.ended is not None and utterance.ended.reason is EndReason.RELEASED
