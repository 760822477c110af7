"""Scheduling on a continuous-batching backend, without a model: the bound on partial steps
in flight, finals never held back by it, and the server options that reach vLLM or are
refused there (in-process; the real vLLM engine is tests/qwen_vllm)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from server.app import build_engine, vllm_engine_kwargs
from server.config import parse_config
from server.engine import fake
from server.engine import qwen as qwen_engine
from server.engine.base import GenerationRequest, GenerationResult, Generator, Priority
from server.engine.qwen import (
    CPU_MAX_BATCH_SIZE,
    GPU_MAX_BATCH_SIZE,
    UnsupportedOptionError,
    WindowedConfig,
    build_qwen_engine,
)
from server.engine.qwen.hf_generator import TransformersGenerator, default_max_batch_size
from server.engine.qwen.policy import windowed_config_from_spec
from server.engine.qwen.vllm_generator import VLLMGenerator
from server.engine.qwen.windowed import WindowedEngine
from server.scheduler import Scheduler


class GatedGenerator(Generator):
    """Like vLLM: one request per call, many calls at once; every call waits for the
    test to open the gate, so what is in flight can be counted."""

    name = "gated"
    max_batch_size = 1
    max_concurrent_batches = 256
    supports_abort = True

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_flight: list[Priority] = []
        self.most_partials = 0
        self.order: list[str] = []

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        (request,) = batch
        self.in_flight.append(request.priority)
        self.most_partials = max(self.most_partials, self.in_flight.count(Priority.PARTIAL))
        try:
            await self.gate.wait()
        finally:
            self.in_flight.remove(request.priority)
        self.order.append(request.context)
        return [GenerationResult(text=request.context)]


def request(name: str, priority: Priority) -> Callable[[], GenerationRequest]:
    audio = np.zeros(160, dtype=np.float32)
    return lambda: GenerationRequest(audio=audio, context=name, priority=priority)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), timeout)


@pytest.mark.parametrize("bound", [3, None])
async def test_partial_bound_holds_partials_but_never_a_final(bound: int | None) -> None:
    gen = GatedGenerator()
    scheduler = Scheduler(gen, max_partials_in_flight=bound)
    scheduler.start()
    try:
        partials = [
            asyncio.create_task(
                scheduler.submit(request(f"p{i}", Priority.PARTIAL), Priority.PARTIAL)
            )
            for i in range(10)
        ]
        expected = 10 if bound is None else bound
        await until(lambda: len(gen.in_flight) == expected)
        final = asyncio.create_task(scheduler.submit(request("f", Priority.FINAL), Priority.FINAL))
        await until(lambda: Priority.FINAL in gen.in_flight)  # dispatched at once
        assert gen.in_flight.count(Priority.PARTIAL) == expected
        assert scheduler.queue_depth == 10 - expected
        gen.gate.set()
        results = await asyncio.gather(final, *partials)
    finally:
        await scheduler.close()
    assert [r.text for r in results] == ["f"] + [f"p{i}" for i in range(10)]
    assert gen.most_partials == expected


async def test_held_partials_are_built_when_dispatched() -> None:
    gen = GatedGenerator()
    scheduler = Scheduler(gen, max_partials_in_flight=1)
    scheduler.start()
    built: list[str] = []

    def builder(name: str) -> Callable[[], GenerationRequest]:
        def build() -> GenerationRequest:
            built.append(name)
            return request(name, Priority.PARTIAL)()

        return build

    try:
        first = asyncio.create_task(scheduler.submit(builder("a"), Priority.PARTIAL))
        second = asyncio.create_task(scheduler.submit(builder("b"), Priority.PARTIAL))
        await until(lambda: len(gen.in_flight) == 1)
        assert built == ["a"]  # b waits unbuilt: it will run on the newest audio
        gen.gate.set()
        await asyncio.gather(first, second)
    finally:
        await scheduler.close()
    assert built == ["a", "b"]


def test_vllm_options_reach_the_engine_arguments() -> None:
    config = parse_config(
        ["--max-num-seqs", "48", "--data-parallel-size", "2", "--enforce-eager"], env={}
    )
    kwargs = vllm_engine_kwargs(config)
    assert kwargs == {
        "max_num_seqs": 48,
        "data_parallel_size": 2,
        "renderer_num_workers": 2,
        "enforce_eager": True,
    }
    args = VLLMGenerator("/m", engine_kwargs=kwargs).engine_args()
    assert args["scheduling_policy"] == "priority"
    assert (args["max_num_seqs"], args["data_parallel_size"], args["enforce_eager"]) == (
        48,
        2,
        True,
    )
    assert vllm_engine_kwargs(parse_config([], env={})) == {"renderer_num_workers": 2}
    assert (args["renderer_num_workers"], args["mm_processor_cache_gb"]) == (2, 0)
    assert VLLMGenerator("/m").engine_args()["renderer_num_workers"] == 2
    threads = vllm_engine_kwargs(parse_config(["--renderer-threads", "6"], env={}))
    assert threads == {"renderer_num_workers": 6}
    assert VLLMGenerator("/m", engine_kwargs=threads).engine_args()["renderer_num_workers"] == 6
    env = {"TINGXIE_MAX_NUM_SEQS": "8", "TINGXIE_DATA_PARALLEL_SIZE": "4"}
    assert vllm_engine_kwargs(parse_config([], env=env)) == {
        "max_num_seqs": 8,
        "data_parallel_size": 4,
        "renderer_num_workers": 2,
    }


def test_partials_in_flight_and_windowed_from_flags_and_environment() -> None:
    default = parse_config([], env={})
    assert default.max_partials_in_flight == 64 and default.windowed == WindowedConfig()
    config = parse_config(
        ["--windowed", "segment_soft_sec=6,segment_max_sec=9"],
        env={"TINGXIE_MAX_PARTIALS_IN_FLIGHT": "5"},
    )
    assert config.max_partials_in_flight == 5
    assert (config.windowed.segment_soft_sec, config.windowed.segment_max_sec) == (6.0, 9.0)
    env = parse_config([], env={"TINGXIE_WINDOWED": "tokens_per_sec=none,rollback_tokens=3"})
    assert env.windowed.tokens_per_sec is None and env.windowed.rollback_tokens == 3


@pytest.mark.parametrize(
    "spec", ["nope=1", "segment_soft_sec", "rollback_tokens=x", "segment_soft_sec=30"]
)
def test_bad_windowed_settings_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        windowed_config_from_spec(spec)


@pytest.fixture
def model_dir(tmp_path: Path) -> str:
    (tmp_path / "config.json").write_text("{}")
    return str(tmp_path)


@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (["--max-batch-size", "4"], "--max-batch-size"),
        (["--partials-with-final", "fill"], "--partials-with-final"),
        ([], None),
    ],
)
def test_transformers_only_options_are_refused_on_vllm(
    argv: list[str], refused: str | None, model_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qwen_engine, "_vllm_installed", lambda: True)
    config = parse_config(argv, env={})
    assert config.transformers_only == ({refused} if refused else set())

    def build(backend: str) -> object:
        return build_qwen_engine(model_dir, backend, transformers_only=config.transformers_only)

    build("transformers")  # honoured there
    if refused is None:
        build("vllm")
        return
    with pytest.raises(UnsupportedOptionError, match=f"{refused}.*--max-num-seqs"):
        build("vllm")


def test_a_shrunk_window_is_logged(model_dir: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="server.engine.qwen"):
        build_qwen_engine(model_dir, "transformers", max_model_len=4096)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="server.engine.qwen"):
        engine = build_qwen_engine(model_dir, "transformers", max_model_len=512)
    assert "final_full_max_sec 90 -> " in caplog.text and "--max-model-len 512" in caplog.text
    assert isinstance(engine, WindowedEngine) and engine.config.final_full_max_sec < 90


def test_article_policy_is_refused_on_vllm(model_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qwen_engine, "_vllm_installed", lambda: True)
    with pytest.raises(UnsupportedOptionError, match="--backend transformers"):
        build_qwen_engine(model_dir, "vllm", "article")
    build_qwen_engine(model_dir, "transformers", "article")


def test_an_environment_variable_counts_as_given() -> None:
    config = parse_config([], env={"TINGXIE_MAX_BATCH_SIZE": "4"})
    assert config.transformers_only == {"--max-batch-size"} and config.max_batch_size == 4
    assert parse_config(["--max-batch-size", "16"], env={}).transformers_only == {
        "--max-batch-size"
    }  # given, even at the default value


@pytest.mark.parametrize(("argv", "batch"), [([], 8), (["--max-batch-size", "3"], 3)])
def test_the_transformers_batch_is_the_backends_own_unless_given(
    argv: list[str], batch: int, model_dir: str
) -> None:
    # The server's default once reached the backend as 16 on CPU too (its own is 8 there).
    config = parse_config(["--backend", "transformers", "--model", model_dir, *argv], env={})
    engine = build_engine(config)
    assert isinstance(engine.generator, TransformersGenerator)
    assert engine.generator.max_batch_size == batch  # no CUDA here: the CPU batch
    assert default_max_batch_size("cuda:0") == GPU_MAX_BATCH_SIZE != CPU_MAX_BATCH_SIZE


@pytest.mark.parametrize(
    ("argv", "batch"), [([], fake.DEFAULT_MAX_BATCH_SIZE), (["--max-batch-size", "2"], 2)]
)
def test_the_fake_batch_is_the_fakes_own_unless_given(argv: list[str], batch: int) -> None:
    engine = build_engine(parse_config(["--engine", "fake", *argv], env={}))
    assert engine.generator.max_batch_size == batch
