"""The Qwen engine through qwen-asr's real transformers backend on CPU, with a tiny random
checkpoint built at test time. Its text is garbage: the tests check structure,
determinism, prefixes and per-session equality, never words."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.engine.base import GenerationRequest, Priority, StreamOptions
from server.engine.qwen import build_qwen_engine
from server.engine.qwen.errors import GenerationError, ModelLoadError, ModelNotFoundError
from server.engine.qwen.hf_generator import TransformersGenerator
from server.engine.qwen.policy import WindowedConfig
from server.engine.qwen.windowed import WindowedEngine
from tests.qwen.conftest import needs_qwen_asr
from tests.qwen.helpers import (
    SR,
    ArrayAudio,
    direct_runner,
    noise,
    run_session,
    scheduler_for,
    speechlike,
)

pytestmark = needs_qwen_asr


def req(seconds: float, seed: int = 0, **kw: Any) -> GenerationRequest:
    kw.setdefault("max_new_tokens", 6)
    return GenerationRequest(audio=noise(seconds, seed), **kw)


async def test_generate_returns_prefix_plus_fixed_length_output(hf_generator: Any) -> None:
    gen: TransformersGenerator = hf_generator
    assert gen.text is not None
    (res,) = await gen.generate([req(1.5, prefix="language English<asr_text>")])
    assert res.text.startswith("language English<asr_text>")
    # ignore_eos: exactly max_new_tokens generated (token ids re-checked via the tokenizer)
    (res8,) = await gen.generate([req(1.5, max_new_tokens=8)])
    (res4,) = await gen.generate([req(1.5, max_new_tokens=4)])
    assert res8.text.startswith(res4.text)  # greedy: shorter budget is a prefix
    assert res8.text != res4.text


async def test_a_batch_equals_its_requests_alone(hf_generator: Any) -> None:
    gen: TransformersGenerator = hf_generator
    batch = [
        req(1.0, 1),
        req(2.5, 2, prefix="language English<asr_text>"),
        req(3.2, 3, language="Chinese", context="热词", max_new_tokens=9),
        req(0.6, 4, max_new_tokens=3),
    ]
    together = await gen.generate(batch)
    alone = [(await gen.generate([r]))[0] for r in batch]
    assert [r.text for r in together] == [r.text for r in alone]
    assert together[2].language == "Chinese"


async def test_forced_language_goes_into_qwen_asrs_prompt(hf_generator: Any) -> None:
    gen: TransformersGenerator = hf_generator
    assert gen.text is not None
    prompt = gen.text.build_prompt("ctx words", "English")
    assert prompt.endswith("<|im_start|>assistant\nlanguage English<asr_text>")
    assert "ctx words" in prompt and "<|audio_pad|>" in prompt
    assert gen.text.build_prompt("", None).endswith("<|im_start|>assistant\n")
    assert gen.text.parse("language English<asr_text> hi", None) == ("English", "hi")


async def test_cancelled_generate_stops_and_the_generator_stays_usable(hf_generator: Any) -> None:
    gen: TransformersGenerator = hf_generator
    big = req(20.0, max_new_tokens=2000)
    task = asyncio.create_task(gen.generate([big]))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    (res,) = await gen.generate([req(1.0, max_new_tokens=2)])  # waits for the aborted run
    assert loop.time() - t0 < 5.0
    assert isinstance(res.text, str)


CFG = WindowedConfig(segment_soft_sec=3.0, segment_max_sec=4.0, max_new_tokens=12)


async def test_stream_is_deterministic_and_bounded(hf_generator: Any) -> None:
    engine = WindowedEngine(hf_generator, CFG)
    audio = speechlike(9.0, gaps=[(3.5, 3.9)])
    a = await run_session(engine, audio, direct_runner(hf_generator))
    b = await run_session(engine, audio, direct_runner(hf_generator))
    assert a == b
    assert len(a) == 19 and a[-1].split(":", 1)[1] != ""
    # stable text only grows
    stables = [s.split("|", 1)[0] for s in a[:-1] if s != "-"]
    for x, y in itertools.pairwise(stables):
        assert y.startswith(x)


async def test_concurrent_sessions_through_the_scheduler_match_each_alone(
    hf_generator: Any,
) -> None:
    engine = WindowedEngine(hf_generator, CFG)
    audios = [speechlike(4.0 + 0.5 * i, seed=10 + i, gaps=[(2.0, 2.4)]) for i in range(4)]
    alone = [await run_session(engine, a, direct_runner(hf_generator)) for a in audios]
    async with scheduler_for(hf_generator) as scheduler:
        together = await asyncio.gather(*(run_session(engine, a, scheduler.submit) for a in audios))
        assert scheduler.stats.largest_batch > 1  # really batched
    assert together == alone


async def test_silence_gives_an_empty_final_without_model_calls(hf_generator: Any) -> None:
    calls: list[int] = []
    engine = WindowedEngine(hf_generator, CFG)
    stream = engine.open_stream(StreamOptions(language="en"))
    quiet = np.zeros(3 * SR, dtype=np.float32)

    async def run(builder: Any, priority: Priority) -> Any:
        calls.append(1)
        return (await hf_generator.generate([builder()]))[0]

    assert await stream.step(ArrayAudio(quiet), run) is None
    final = await stream.finish(ArrayAudio(quiet), run)
    assert final.text == "" and calls == []


# -- loading and errors ---------------------------------------------------------------------


def test_factory_builds_without_loading(tiny_model_dir: Path) -> None:
    engine = build_qwen_engine(str(tiny_model_dir), "transformers", "windowed")
    assert isinstance(engine, WindowedEngine)
    gen = engine.generator
    assert isinstance(gen, TransformersGenerator) and gen.text is None
    assert gen.model == str(tiny_model_dir.resolve())
    with pytest.raises(ValueError, match="unknown policy"):
        build_qwen_engine(str(tiny_model_dir), "transformers", "fancy")


def test_bad_model_path_is_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=str(tmp_path / "missing")):
        build_qwen_engine(str(tmp_path / "missing"), "transformers")


async def test_a_model_that_fails_to_load_names_the_path(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    engine = build_qwen_engine(str(broken), "transformers")
    with pytest.raises(ModelLoadError, match=str(broken)):
        await engine.generator.load()


async def test_generate_before_load_is_a_clear_error(tiny_model_dir: Path) -> None:
    gen = TransformersGenerator(str(tiny_model_dir))
    with pytest.raises(GenerationError, match="not loaded"):
        await gen.generate([req(1.0)])


async def test_a_failing_model_gives_a_generation_error(
    hf_generator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(**kwargs: Any) -> Any:
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(hf_generator._model, "generate", explode)
    engine = WindowedEngine(hf_generator, CFG)
    stream = engine.open_stream(StreamOptions())
    with pytest.raises(GenerationError, match=r"qwen-transformers: generation failed.*device-side"):
        await stream.finish(ArrayAudio(noise(1.0)), direct_runner(hf_generator))
    async with scheduler_for(hf_generator) as scheduler:
        with pytest.raises(GenerationError, match="device-side"):
            await stream.step(ArrayAudio(noise(1.0)), scheduler.submit)
