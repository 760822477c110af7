"""Shared helpers for the desktop audio tests: collect segmenter events into utterances
and check the event grammar on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from desktop.audio.segmenter import (
    AudioChunk,
    Event,
    UtteranceDropped,
    UtteranceEnded,
    UtteranceStarted,
)

SPEECH_DIR = Path(__file__).parent.parent / "data" / "speech"


def speech(name: str) -> np.ndarray:
    """A recording from tests/data/speech as int16 samples (bit-exact with the file)."""
    from desktop.audio.source import load_audio_16k_mono

    return load_audio_16k_mono(SPEECH_DIR / f"{name}.wav")


def room_noise(seconds: float, seed: int, level: float = 20.0) -> np.ndarray:
    """Quiet noise (about -64 dBFS) instead of digital zeros: gaps stay unique, so an
    utterance's position in the fed stream can be found by exact match."""
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, level, int(seconds * 16000))).astype(np.int16)


def find_exact(haystack: np.ndarray, needle: np.ndarray) -> list[int]:
    """Every offset where ``needle`` occurs in ``haystack`` sample for sample."""
    h, n = haystack.astype("<i2").tobytes(), needle.astype("<i2").tobytes()
    found, i = [], h.find(n)
    while i != -1:
        if i % 2 == 0:
            found.append(i // 2)
        i = h.find(n, i + 1)
    return found


def speech_region(vad: Any, samples: np.ndarray) -> tuple[int, int]:
    """First and last speech sample of a recording by silero's offline algorithm (a second
    opinion that does not go through our segmenter), without padding."""
    import torch
    from silero_vad import get_speech_timestamps

    vad.reset()
    ts = get_speech_timestamps(
        torch.from_numpy(samples.astype(np.float32) / 32768), vad._model, speech_pad_ms=0
    )
    vad.reset()
    return int(ts[0]["start"]), int(ts[-1]["end"])


@dataclass
class Utterance:
    started: UtteranceStarted
    chunks: list[AudioChunk] = field(default_factory=list)
    ended: UtteranceEnded | None = None

    @property
    def audio(self) -> np.ndarray:
        return np.frombuffer(b"".join(c.pcm for c in self.chunks), dtype="<i2")


@dataclass
class Collector:
    """Consumes events, asserting the contract documented in desktop.audio.segmenter."""

    utterances: list[Utterance] = field(default_factory=list)
    dropped: list[UtteranceDropped] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def open(self) -> Utterance | None:
        if self.utterances and self.utterances[-1].ended is None:
            return self.utterances[-1]
        return None

    def __call__(self, event: Event) -> None:
        self.add(event)

    def add(self, event: Event) -> None:
        self.events.append(event)
        cur = self.open
        if isinstance(event, UtteranceStarted):
            assert cur is None, f"start of {event.utterance_id} while {cur} is open"
            if self.utterances:
                prev = self.utterances[-1]
                assert event.utterance_id > prev.started.utterance_id
                assert prev.ended is not None
                assert event.start_sample >= prev.ended.end_sample, "audio sent twice"
            self.utterances.append(Utterance(event))
        elif isinstance(event, AudioChunk):
            assert cur is not None and event.utterance_id == cur.started.utterance_id
            expected = cur.chunks[-1].end_sample if cur.chunks else cur.started.start_sample
            assert event.start_sample == expected, "audio not contiguous"
            assert event.num_samples > 0
        elif isinstance(event, UtteranceEnded):
            assert cur is not None and event.utterance_id == cur.started.utterance_id
            sent = cur.chunks[-1].end_sample if cur.chunks else cur.started.start_sample
            assert event.end_sample == sent
            assert event.start_sample == cur.started.start_sample
            cur.ended = event
        elif isinstance(event, UtteranceDropped):
            assert all(u.started.utterance_id != event.utterance_id for u in self.utterances)
            self.dropped.append(event)
        if isinstance(event, AudioChunk) and cur is not None:
            cur.chunks.append(event)

    def extend(self, events: list[Event]) -> None:
        for e in events:
            self.add(e)
