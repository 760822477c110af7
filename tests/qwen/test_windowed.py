"""The windowed streaming policy against scripted generators (no model): what audio and
which prefix each step sends, stable/unstable text, finals, gates, guards, errors."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from server.engine.base import (
    GenerationRequest,
    GenerationResult,
    PartialText,
    Priority,
    RequestBuilder,
    StreamOptions,
)
from server.engine.qwen.errors import GenerationError
from server.engine.qwen.policy import SAMPLE_RATE, WindowedConfig, rollback_prefix
from server.engine.qwen.windowed import WindowedEngine, WindowedStream
from tests.qwen.helpers import (
    SR,
    ArrayAudio,
    ScriptedGenerator,
    direct_runner,
    noise,
    scheduler_for,
    speechlike,
)


def make(
    gen: ScriptedGenerator | None = None, language: str | None = None, **cfg: object
) -> tuple[ScriptedGenerator, WindowedStream]:
    gen = gen or ScriptedGenerator()
    engine = WindowedEngine(gen, WindowedConfig(**cfg))  # type: ignore[arg-type]
    stream = engine.open_stream(StreamOptions(language=language, context="hot words"))
    assert isinstance(stream, WindowedStream)
    return gen, stream


async def stream_through(
    stream: WindowedStream, gen: ScriptedGenerator, audio: np.ndarray, every: float = 0.5
) -> list[PartialText | None]:
    run = direct_runner(gen)
    hop = int(every * SR)
    return [await stream.step(ArrayAudio(audio, n), run) for n in range(hop, len(audio) + 1, hop)]


async def test_silence_makes_no_request_and_an_empty_final() -> None:
    gen, stream = make()
    audio = np.zeros(5 * SR, dtype=np.float32)
    audio += np.float32(0.001) * np.sin(np.arange(len(audio), dtype=np.float32))  # hum
    partials = await stream_through(stream, gen, audio)
    assert partials == [None] * len(partials)
    final = await stream.finish(ArrayAudio(audio), direct_runner(gen))
    assert final.text == ""
    assert gen.requests == []


async def test_steps_send_rolled_back_committed_text_as_prefix() -> None:
    gen, stream = make(rollback_tokens=5, unfixed_steps=2)
    partials = await stream_through(stream, gen, noise(6.0))
    prefixes = [r.prefix for r in gen.requests]
    assert prefixes[:2] == ["", ""]  # unfixed steps
    for prev_req, req in zip(gen.requests[1:], gen.requests[2:], strict=False):
        prev_raw = gen.full_raw(prev_req)
        assert req.prefix == rollback_prefix(gen.text, prev_raw, 5)
        assert req.prefix.startswith("language English<asr_text>")
    # committed text only grows
    for a, b in itertools.pairwise(prefixes):
        assert b.startswith(a)
    assert all(r.priority == Priority.PARTIAL and r.context == "hot words" for r in gen.requests)
    # stable text never changes, only grows; the full text extends it
    stables = [p.stable for p in partials if p is not None]
    assert stables[-1].startswith("the quick brown")
    for a, b in itertools.pairwise(stables):
        assert b.startswith(a)
    for p in partials:
        assert p is not None and p.text.startswith(p.stable)
    assert partials[-1] is not None and partials[-1].text.startswith("the quick brown fox")


async def test_partial_step_cost_is_bounded_for_long_utterances() -> None:
    gen, stream = make(segment_soft_sec=8.0, segment_max_sec=12.0)
    # a pause roughly every 7 s, as in speech
    gaps = [(t, t + 0.4) for t in range(7, 60, 7)]
    audio = speechlike(60.0, gaps=gaps)
    partials = await stream_through(stream, gen, audio)
    longest = max(len(r.audio) for r in gen.requests) / SR
    assert longest <= 12.0 + 0.5
    longest_prefix = max(len(r.prefix) for r in gen.requests)
    assert longest_prefix < 200  # one segment's text, not the utterance's
    # steps kept going to the end of the audio, and the stable text covers closed segments
    last = partials[-1]
    assert last is not None and len(last.stable.split()) > 60 / 0.5 * 0.6
    stables = [p.stable for p in partials if p is not None]
    for a, b in itertools.pairwise(stables):
        assert b.startswith(a)


async def test_segments_close_inside_pauses() -> None:
    gen, stream = make(segment_soft_sec=8.0, segment_max_sec=16.0)
    audio = speechlike(14.0, gaps=[(9.0, 9.6)])
    await stream_through(stream, gen, audio)
    assert 9.0 * SR <= stream._seg_start <= 9.6 * SR


async def test_final_is_a_full_offline_decode() -> None:
    gen, stream = make()
    audio = noise(8.0)
    await stream_through(stream, gen, audio)
    gen.requests.clear()
    final = await stream.finish(ArrayAudio(audio), direct_runner(gen))
    assert len(gen.requests) == 1
    req = gen.requests[0]
    assert req.priority == Priority.FINAL and req.prefix == "" and len(req.audio) == len(audio)
    assert final.text == " ".join(gen.words[i % len(gen.words)] for i in range(16))
    assert final.language == "English"


async def test_final_can_reuse_the_stable_prefix() -> None:
    gen, stream = make(final_reuse_stable_prefix=True)
    audio = noise(4.0)
    await stream_through(stream, gen, audio)
    gen.requests.clear()
    await stream.finish(ArrayAudio(audio), direct_runner(gen))
    assert gen.requests[0].prefix == stream._committed != ""


async def test_long_final_is_decoded_in_concurrent_windows() -> None:
    gen, stream = make(final_full_max_sec=20.0, final_window_sec=10.0)
    audio = speechlike(35.0, gaps=[(9.0, 9.5), (18.5, 19.0), (27.0, 27.5)])
    final = await stream.finish(ArrayAudio(audio), direct_runner(gen))
    assert len(gen.requests) == 4
    assert all(len(r.audio) <= 10 * SR and r.priority == Priority.FINAL for r in gen.requests)
    assert sum(len(r.audio) for r in gen.requests) == len(audio)
    assert len(final.text.split()) >= 60


async def test_long_final_skips_silent_windows() -> None:
    gen, stream = make(final_full_max_sec=10.0, final_window_sec=5.0)
    audio = np.concatenate([noise(4.0), np.zeros(12 * SR, dtype=np.float32), noise(3.0, 1)])
    final = await stream.finish(ArrayAudio(audio), direct_runner(gen))
    covered = sum(len(r.audio) for r in gen.requests) / SR
    assert covered < 10.0
    assert final.text.startswith("the quick")


async def test_forced_language_and_context_reach_every_request() -> None:
    gen, stream = make(language="zh")
    audio = noise(3.0)
    partials = await stream_through(stream, gen, audio)
    final = await stream.finish(ArrayAudio(audio), direct_runner(gen))
    assert {r.language for r in gen.requests} == {"Chinese"}
    assert {r.context for r in gen.requests} == {"hot words"}
    # with a forced language the raw output has no header, the prefix is plain text
    assert any(r.prefix.startswith("the") for r in gen.requests)
    assert final.language == "Chinese" and final.text.startswith("the quick")
    assert partials[-1] is not None and partials[-1].text.startswith("the quick")


async def test_unsupported_language_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        make(language="xx-unknown")


async def test_multibyte_text_never_has_broken_characters() -> None:
    gen = ScriptedGenerator(words=["你好", "世界", "语音", "识别"], language="Chinese")
    gen, stream = make(gen, rollback_tokens=4)
    partials = await stream_through(stream, gen, noise(6.0), every=0.25)
    for r in gen.requests:
        assert "\ufffd" not in r.prefix
    for p in partials:
        assert p is not None and "\ufffd" not in p.stable
    assert partials[-1] is not None and partials[-1].stable.startswith("你好 世界 语音")


async def test_repetition_guard_keeps_loops_out_of_the_text() -> None:
    def loop_after_three(text: str) -> str:
        words = text.split()
        return " ".join(words[:3] + ["la"] * 40) if len(words) > 3 else text

    gen = ScriptedGenerator(transform=loop_after_three)
    gen, stream = make(gen)
    audio = noise(6.0)
    partials = await stream_through(stream, gen, audio)
    for p in partials:
        assert p is not None and p.text.count("la") <= 2
    final = await stream.finish(ArrayAudio(audio), direct_runner(gen))
    assert final.text.count(" la") <= 1


async def test_token_budget_grows_with_audio_and_is_capped() -> None:
    gen, stream = make(tokens_base=10, tokens_per_sec=4.0, max_new_tokens=30)
    await stream_through(stream, gen, noise(8.0), every=1.0)
    budgets = [r.max_new_tokens for r in gen.requests]
    assert budgets[0] == 14 and budgets[-1] == 30
    assert budgets == sorted(budgets)


async def test_a_cancelled_step_leaves_the_state_untouched() -> None:
    gen, stream = make()
    audio = noise(5.0)
    run = direct_runner(gen)
    for n in (SR, 2 * SR, 3 * SR):
        await stream.step(ArrayAudio(audio, n), run)
    committed = stream._committed

    async def never(builder: RequestBuilder, priority: Priority) -> GenerationResult:
        await asyncio.sleep(3600)
        raise AssertionError

    task = asyncio.create_task(stream.step(ArrayAudio(audio, 4 * SR), never))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream._committed == committed
    before = len(gen.requests)
    await stream.step(ArrayAudio(audio, 4 * SR), run)
    assert gen.requests[before].prefix == committed


class Failing(ScriptedGenerator):
    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        raise GenerationError("scripted: the model fell over")


async def test_generator_errors_reach_the_caller() -> None:
    gen, stream = make(Failing())
    audio = noise(2.0)
    with pytest.raises(GenerationError, match="fell over"):
        await stream.step(ArrayAudio(audio), direct_runner(gen))
    with pytest.raises(GenerationError, match="fell over"):
        await stream.finish(ArrayAudio(audio), direct_runner(gen))


async def test_sessions_through_the_real_scheduler_match_sessions_alone() -> None:
    audios = [speechlike(6.0 + i, seed=i, gaps=[(2.0 + i * 0.3, 2.5 + i * 0.3)]) for i in range(6)]

    async def session(gen: ScriptedGenerator, audio: np.ndarray, run: object) -> list[str]:
        engine = WindowedEngine(gen, WindowedConfig(segment_soft_sec=3.0, segment_max_sec=5.0))
        stream = engine.open_stream(StreamOptions())
        out = []
        for n in range(SR // 2, len(audio) + 1, SR // 2):
            p = await stream.step(ArrayAudio(audio, n), run)  # type: ignore[arg-type]
            out.append("" if p is None else f"{p.stable}|{p.unstable}")
            await asyncio.sleep(0)
        final = await stream.finish(ArrayAudio(audio), run)  # type: ignore[arg-type]
        return [*out, final.text]

    alone = []
    for audio in audios:
        gen = ScriptedGenerator()
        alone.append(await session(gen, audio, direct_runner(gen)))
    gen = ScriptedGenerator()
    async with scheduler_for(gen) as scheduler:
        together = await asyncio.gather(*(session(gen, a, scheduler.submit) for a in audios))
        assert scheduler.stats.largest_batch > 1
    assert together == alone


def test_requests_are_padded_to_half_a_second() -> None:
    _gen, stream = make()
    req = stream._request(noise(0.2), "", Priority.PARTIAL, 0.2)
    assert len(req.audio) == SAMPLE_RATE // 2 and not np.any(req.audio[int(0.2 * SR) :])
