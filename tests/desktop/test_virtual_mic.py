"""The real microphone path: PulseAudio pipe source → PortAudio → MicrophoneSource →
pipeline with Silero VAD. Speech is written into the virtual microphone in real time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from desktop.audio.pipeline import AudioPipeline
from desktop.audio.segmenter import EndReason, Segmenter
from desktop.audio.source import MicrophoneSource, SourceStatus, SourceStatusKind
from desktop.audio.vad import SileroVad
from tests.desktop.conftest import VirtualMic
from tests.desktop.helpers import Collector, find_exact, room_noise, speech, speech_region

NAMES = ["ps_cards_001", "ps_0880", "ps_cards_003"]


def wait_for(cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.mark.slow
def test_virtual_mic_utterances_are_bit_exact_with_the_speech(
    virtual_mic: VirtualMic, silero: SileroVad
) -> None:
    parts, spans = [room_noise(1.0, seed=100)], []
    pos = len(parts[0])
    for k, name in enumerate(NAMES):
        rec = speech(name)
        spans.append((name, pos, pos + len(rec)))
        parts += [rec, room_noise(1.5, seed=101 + k)]
        pos += len(rec) + len(parts[-1])
    fed = np.concatenate(parts)

    statuses: list[SourceStatus] = []
    lock = threading.Lock()
    col = Collector()

    def on_event(event):  # type: ignore[no-untyped-def]
        with lock:
            col.add(event)

    mic = MicrophoneSource(on_status=statuses.append)  # the default device: vmic
    pipeline = AudioPipeline(mic, Segmenter(), silero, on_event)
    pipeline.start()
    try:
        assert wait_for(lambda: statuses, 5), "microphone did not open"
        feeder = virtual_mic.feed_in_background(fed, pace=True)
        feeder.join(timeout=len(fed) / 16000 + 10)
        assert not feeder.is_alive()
        # the last gap (1.5 s) outlasts min silence; wait for the last end to come through
        assert wait_for(lambda: len([u for u in col.utterances if u.ended]) >= len(NAMES), 3)
    finally:
        pipeline.stop()
    assert pipeline.error is None
    assert [s.kind for s in statuses] == [SourceStatusKind.OPENED], statuses

    with lock:
        utterances = list(col.utterances)
        dropped = list(col.dropped)
    assert not dropped
    assert len(utterances) == len(NAMES), [(u.started, u.ended) for u in utterances]
    for u, (name, rec_start, rec_end) in zip(utterances, spans, strict=True):
        assert u.ended is not None and u.ended.reason is EndReason.SILENCE
        # where in the fed stream did this utterance come from? exact match only
        (offset,) = find_exact(fed, u.audio)
        np.testing.assert_array_equal(u.audio, fed[offset : offset + len(u.audio)])
        # exactly 480 ms of pre-roll before the first speech chunk, which is in the
        # recording
        assert u.started.pre_roll_samples == 7680
        first_speech = offset + u.started.pre_roll_samples
        assert rec_start <= first_speech < rec_end, name
    # every recording is covered from its first speech to its end of speech: compare the
    # utterance span with an offline Silero pass over the recording alone
    for u, (name, rec_start, _) in zip(utterances, spans, strict=True):
        (offset,) = find_exact(fed, u.audio)
        on, off = speech_region(silero, speech(name))
        assert offset <= rec_start + on - 400 * 16, name
        assert offset + len(u.audio) >= rec_start + off + 100 * 16, name


@pytest.mark.slow
def test_virtual_mic_unplugged_and_plugged_back_is_reopened(virtual_mic: VirtualMic) -> None:
    statuses: list[SourceStatus] = []
    mic = MicrophoneSource(on_status=statuses.append, stall_timeout_s=1.0, backoff_s=(0.25, 0.5))
    stop = threading.Event()
    feeder = virtual_mic.feed_until(stop, value=1234)
    kinds = lambda: [s.kind for s in statuses]  # noqa: E731
    try:
        mic.start()
        got_before = 0
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            block = mic.read(timeout=0.2)
            if block is not None:
                got_before += len(block)
        assert got_before > 8000
        virtual_mic.unplug()
        t_end = time.monotonic() + 4.0
        while time.monotonic() < t_end and SourceStatusKind.RETRYING not in kinds():
            mic.read(timeout=0.2)  # must not raise while the device is gone
        assert kinds()[:3] == [
            SourceStatusKind.OPENED,
            SourceStatusKind.LOST,
            SourceStatusKind.RETRYING,
        ], statuses
        virtual_mic.plug()
        after: list[np.ndarray] = []
        t_end = time.monotonic() + 6.0
        while time.monotonic() < t_end and sum(map(len, after)) < 16000:
            block = mic.read(timeout=0.2)
            if block is not None and SourceStatusKind.REOPENED in kinds():
                after.append(block)
        assert kinds()[-1] is SourceStatusKind.REOPENED, statuses
        audio = np.concatenate(after)
        assert len(audio) >= 16000
        assert (audio == 1234).mean() > 0.9  # the fed samples, not silence
    finally:
        stop.set()
        mic.stop()
        virtual_mic.plug()
        feeder.join(2)
