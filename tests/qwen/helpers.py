"""Test doubles for the Qwen engine: audio views, a byte-level model text, scripted
generators, and a runner on the real scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import numpy as np

from server.engine.base import (
    AudioArray,
    Engine,
    GenerationRequest,
    GenerationResult,
    Generator,
    Priority,
    RequestBuilder,
    Runner,
    StreamOptions,
)
from server.engine.qwen.policy import ASR_TEXT_TAG
from server.scheduler import Scheduler

SR = 16000


class ArrayAudio:
    """AudioView over the first ``n`` samples of a fixed array."""

    def __init__(self, audio: AudioArray, n: int | None = None) -> None:
        self.audio = audio
        self.n = len(audio) if n is None else n

    def samples(self, start: int = 0, end: int | None = None) -> AudioArray:
        # A copy, as the AudioView contract promises (engines no longer copy).
        stop = self.n if end is None else min(end, self.n)
        return self.audio[start:stop].copy()

    @property
    def n_samples(self) -> int:
        return self.n


def noise(seconds: float, seed: int = 0, level: float = 0.1) -> AudioArray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(SR * seconds))).astype(np.float32)


def speechlike(
    seconds: float, seed: int = 0, gaps: Sequence[tuple[float, float]] = ()
) -> AudioArray:
    """Noise at speech level with silent gaps (start, end) in seconds."""
    a = noise(seconds, seed)
    for s, e in gaps:
        a[int(s * SR) : int(e * SR)] = 0.0
    return a


class ByteText:
    """ModelText with one token per UTF-8 byte: multi-byte characters split across tokens,
    so rollback can land inside one (decoded as U+FFFD)."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def parse(self, raw: str, forced_language: str | None) -> tuple[str, str]:
        s = raw.strip()
        if forced_language:
            return forced_language, s
        if ASR_TEXT_TAG not in s:
            return "", s
        meta, text = s.split(ASR_TEXT_TAG, 1)
        lang = meta.replace("language", "").strip()
        if lang.lower() == "none":
            return "", text.strip()
        return lang, text.strip()


_SENTENCE = "the quick brown fox jumps over the lazy dog and keeps running far away"
WORDS = _SENTENCE.split(" ")


class ScriptedGenerator(Generator):
    """Answers like a well-behaved ASR model: one word per 0.5 s of (non-padded) audio,
    continuing after whatever forced prefix the request carries; records requests."""

    name = "scripted"
    max_batch_size = 8
    max_concurrent_batches = 4

    def __init__(
        self,
        words: Sequence[str] = WORDS,
        language: str = "English",
        transform: Callable[[str], str] | None = None,
    ) -> None:
        self.text = ByteText()
        self.words = list(words)
        self.language = language
        self.transform = transform
        self.requests: list[GenerationRequest] = []

    def full_raw(self, request: GenerationRequest) -> str:
        audio = request.audio
        voiced = int(np.count_nonzero(np.abs(audio) > 1e-6))
        n = max(1, int(voiced / SR / 0.5))
        words = [self.words[i % len(self.words)] for i in range(n)]
        text = " ".join(words)
        if self.transform is not None:
            text = self.transform(text)
        if request.language:
            return text
        return f"language {self.language}{ASR_TEXT_TAG}{text}"

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        await asyncio.sleep(0)
        out = []
        for r in batch:
            self.requests.append(r)
            full = self.full_raw(r)
            gen = full[len(r.prefix) :] if full.startswith(r.prefix) else full
            out.append(GenerationResult(text=r.prefix + gen, language=r.language))
        return out


async def direct_run(
    generator: Generator, builder: RequestBuilder, priority: Priority
) -> GenerationResult:
    return (await generator.generate([builder()]))[0]


def direct_runner(generator: Generator) -> Runner:
    async def run(builder: RequestBuilder, priority: Priority) -> GenerationResult:
        return await direct_run(generator, builder, priority)

    return run


@asynccontextmanager
async def scheduler_for(generator: Generator) -> AsyncIterator[Scheduler]:
    """The server's real scheduler around ``generator``."""
    scheduler = Scheduler(generator)
    scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.close()


async def run_session(engine: Engine, audio: np.ndarray, run: Runner) -> list[str]:
    """One utterance through ``engine``: a partial step every 0.5 s, then the final;
    returns what each step showed and the final, for comparing sessions."""
    stream = engine.open_stream(StreamOptions())
    out = []
    for n in range(SR // 2, len(audio) + 1, SR // 2):
        p = await stream.step(ArrayAudio(audio, n), run)
        out.append("-" if p is None else f"{p.stable}|{p.unstable}")
    final = await stream.finish(ArrayAudio(audio), run)
    return [*out, f"{final.language}:{final.text}"]
