"""The article's behaviour (qwen-asr's own streaming) as an engine policy, on the real
transformers generator: it re-feeds all audio every chunk and its final is the streaming
text; it runs through the same scheduler as the windowed policy."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from server.engine.base import GenerationRequest, GenerationResult, Priority, StreamOptions
from server.engine.qwen.article import ArticleConfig, ArticleEngine
from tests.qwen.conftest import needs_qwen_asr
from tests.qwen.helpers import SR, ArrayAudio, direct_runner, noise, scheduler_for

pytestmark = needs_qwen_asr


class Recorder:
    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.requests: list[tuple[GenerationRequest, Priority]] = []

    async def run(self, builder: Any, priority: Priority) -> GenerationResult:
        request = builder()
        self.requests.append((request, priority))
        return (await self.generator.generate([request]))[0]


async def session(
    engine: ArticleEngine, audio: np.ndarray, run: Any, hop: float = 0.5
) -> list[str]:
    stream = engine.open_stream(StreamOptions(context="ctx"))
    out = []
    step = int(hop * SR)
    for n in range(step, len(audio) + 1, step):
        p = await stream.step(ArrayAudio(audio, n), run)
        out.append("-" if p is None else p.text)
    final = await stream.finish(ArrayAudio(audio), run)
    return [*out, final.text]


async def test_article_policy_refeeds_all_audio(hf_generator: Any) -> None:
    engine = ArticleEngine(hf_generator, ArticleConfig(chunk_size_sec=1.0, max_new_tokens=6))
    rec = Recorder(hf_generator)
    audio = noise(4.5, seed=3)
    out = await session(engine, audio, rec.run)
    lengths = [len(r.audio) / SR for r, _ in rec.requests]
    assert lengths == [1.0, 2.0, 3.0, 4.0, 4.5]  # cost grows with the utterance
    assert [p for _, p in rec.requests] == [Priority.PARTIAL] * 4 + [Priority.FINAL]
    assert [r.prefix == "" for r, _ in rec.requests[:2]] == [True, True]
    assert all(r.context == "ctx" and r.max_new_tokens == 6 for r, _ in rec.requests)
    # partials only when a chunk completed; the final is the streaming text
    assert out[0] == "-" and out[1] != "-"
    assert isinstance(out[-1], str)


async def test_article_sessions_through_the_scheduler_match_alone(hf_generator: Any) -> None:
    engine = ArticleEngine(hf_generator, ArticleConfig(chunk_size_sec=1.0, max_new_tokens=5))
    audios = [noise(3.0 + 0.5 * i, seed=20 + i) for i in range(3)]
    alone = [await session(engine, a, direct_runner(hf_generator)) for a in audios]
    async with scheduler_for(hf_generator) as scheduler:
        together = await asyncio.gather(*(session(engine, a, scheduler.submit) for a in audios))
    assert together == alone


async def test_article_errors_reach_the_caller(hf_generator: Any) -> None:
    engine = ArticleEngine(hf_generator, ArticleConfig(chunk_size_sec=1.0))

    async def failing(builder: Any, priority: Priority) -> GenerationResult:
        raise RuntimeError("model gone")

    stream = engine.open_stream(StreamOptions())
    with pytest.raises(RuntimeError, match="model gone"):
        await stream.step(ArrayAudio(noise(1.2)), failing)
