"""Driving a client through one recording, as the desktop app does."""

from __future__ import annotations

import queue
import time

from desktop.audio.segmenter import AudioChunk, EndReason, Mode, UtteranceEnded, UtteranceStarted
from desktop.streaming import ClientEvent, DictationClient
from tests.conftest import Recording

CHUNK_SAMPLES = 512  # 32 ms, the VAD's block


def submit_recording(client: DictationClient, recording: Recording, utterance_id: int = 1) -> None:
    """The segmenter events of one utterance holding the whole recording."""
    pcm = recording.pcm()
    samples = len(pcm) // 2
    client.submit(UtteranceStarted(utterance_id, 0, 0, Mode.HANDS_FREE, time.monotonic()))
    for start in range(0, samples, CHUNK_SAMPLES):
        chunk = pcm[2 * start : 2 * (start + CHUNK_SAMPLES)]
        client.submit(AudioChunk(utterance_id, start, chunk))
    client.submit(UtteranceEnded(utterance_id, EndReason.SILENCE, 0, samples, samples, samples))


def next_event(events: queue.Queue[ClientEvent], kind: type, timeout: float = 15.0) -> ClientEvent:
    """The first event of ``kind`` (earlier events of other kinds are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        event = events.get(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(event, kind):
            return event
