"""Deterministic stand-in for a speech model, so everything above the model can be
tested and benchmarked without one.

Text is derived from the audio itself: each whole ``block_seconds`` of audio becomes
one word picked by the CRC-32 of its samples, and a trailing partial block one more
word. The same audio always gives the same text, a single changed sample changes a
word, and a growing utterance keeps its earlier words — so tests can tell whether
the server received every byte, in order, for the right session.

For fault-handling tests the fake can also be told to misbehave on chosen utterances
(``inject_faults``): a request whose context is :data:`FAULT_RAISE` fails, one whose
context is :data:`FAULT_HANG` never returns.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Sequence

import numpy as np

from protocol.audio import SAMPLE_RATE
from server.engine.base import AudioArray, GenerationRequest, GenerationResult, Generator

ENGLISH_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]
CHINESE_WORDS = tuple("你好世界今天天气很好我们一起去公园散步吃饭喝茶读书写字听说唱歌跳舞")

#: Peak amplitude below which a block counts as silence (about -50 dBFS).
SILENCE_PEAK = 0.003

#: Contexts that make a fake with ``inject_faults`` fail or hang on that request.
FAULT_RAISE = "fault:raise"
FAULT_HANG = "fault:hang"


class InjectedFault(RuntimeError):
    """The failure a fake generator was told to produce."""


def words_for_audio(
    audio: AudioArray, block_seconds: float = 1.0, language: str | None = None
) -> list[str]:
    """The fake transcript of ``audio``: one word per (partial) block of sound."""
    vocabulary = CHINESE_WORDS if _is_chinese(language) else ENGLISH_WORDS
    block = max(1, int(block_seconds * SAMPLE_RATE))
    # Quantise back to the wire's int16 so the text depends only on the bytes sent.
    pcm = np.round(audio * 32768.0).astype("<i2")
    words = []
    for begin in range(0, len(pcm), block):
        chunk = pcm[begin : begin + block]
        if np.abs(chunk).max(initial=0) < SILENCE_PEAK * 32768:
            continue
        words.append(vocabulary[zlib.crc32(chunk.tobytes()) % len(vocabulary)])
    return words


def text_for_audio(
    audio: AudioArray, block_seconds: float = 1.0, language: str | None = None
) -> str:
    words = words_for_audio(audio, block_seconds, language)
    return ("" if _is_chinese(language) else " ").join(words)


def _is_chinese(language: str | None) -> bool:
    return (language or "").lower() in {"zh", "chinese", "cmn", "yue", "cantonese"}


#: Requests per call unless ``--max-batch-size`` says otherwise.
DEFAULT_MAX_BATCH_SIZE = 16


class FakeGenerator(Generator):
    """Batching fake: a batch of n requests costs ``per_batch_ms + n * per_request_ms``
    of worker-thread time, like a model whose batch has a fixed overhead.

    ``concurrent_batches`` > 1 makes it stand in for a continuous-batching backend
    (vLLM): that many calls run at once. With ``inject_faults``, a batch holding a
    :data:`FAULT_RAISE` request raises :class:`InjectedFault`, and one holding a
    :data:`FAULT_HANG` request waits until it is cancelled, as a stuck model call that
    the server can abort."""

    name = "fake"

    def __init__(
        self,
        *,
        per_batch_ms: float = 0.0,
        per_request_ms: float = 0.0,
        max_batch_size: int | None = None,
        block_seconds: float = 1.0,
        concurrent_batches: int = 1,
        inject_faults: bool = False,
    ) -> None:
        if per_batch_ms < 0 or per_request_ms < 0:
            raise ValueError("fake compute times must be >= 0")
        if max_batch_size is None:
            max_batch_size = DEFAULT_MAX_BATCH_SIZE
        if max_batch_size < 1 or concurrent_batches < 1:
            raise ValueError("max_batch_size and concurrent_batches must be >= 1")
        self.per_batch_ms = per_batch_ms
        self.per_request_ms = per_request_ms
        self.max_batch_size = max_batch_size
        self.max_concurrent_batches = concurrent_batches
        self.block_seconds = block_seconds
        self.inject_faults = inject_faults
        self.model = f"fake(block={block_seconds}s)"
        self.batches_run = 0
        self.requests_run = 0

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self.inject_faults:
            contexts = {request.context for request in batch}
            if FAULT_HANG in contexts:
                await asyncio.Event().wait()  # forever, until cancelled
            if FAULT_RAISE in contexts:
                raise InjectedFault(f"injected failure for context {FAULT_RAISE!r}")
        return await asyncio.to_thread(self._run, list(batch))

    def _run(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        cost_s = (self.per_batch_ms + self.per_request_ms * len(batch)) / 1000.0
        if cost_s > 0:
            time.sleep(cost_s)
        self.batches_run += 1
        self.requests_run += len(batch)
        results = []
        for request in batch:
            text = text_for_audio(request.audio, self.block_seconds, request.language)
            # Honour the forced prefix the way a real model does: output starts with it.
            if request.prefix and not text.startswith(request.prefix):
                text = request.prefix + text
            results.append(GenerationResult(text=text, language=request.language or "English"))
        return results
