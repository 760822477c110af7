"""Qwen3-ASR on vLLM on a GPU: the production path (windowed policy, the server's scheduler
and sessions, vLLM's native Qwen3-ASR with priority scheduling) with full-size 0.6B / 1.7B
shapes, and vLLM's own realtime Qwen3-ASR path as the peer to beat.

    # GPU machine (torch 2.11 / CUDA 13), vLLM 0.26.0 and what it needs on PYTHONPATH:
    python tests/bench/bench_vllm_gpu.py --size 1.7b --out R17.json             # production
    python tests/bench/bench_vllm_gpu.py --size 1.7b --realtime --out RT17.json  # the peer
    python tests/bench/bench_vllm_gpu.py --render R17.json R06.json RT17.json    # docs section
    python tests/bench/bench_vllm_gpu.py --size tiny --dry-run --no-write        # harness check

No weights exist here: vLLM's ``load_format="dummy"`` builds random bf16 weights of the
released shapes from the config, tokenizer and processor files that
tests/bench/qwen_full_size.py writes. Random weights never stop by themselves, so every
request generates a fixed number of tokens (``ignore_eos``): as many as a real transcript of
its audio would add (HEADER_TOKENS + SPEECH_TOKENS_PER_SEC per second of audio, minus the
forced prefix; a steady partial step adds ~7, a 5 s final 25, a 20 s final 85).

Measured, each in one run on one GPU:

- alone: one partial step (5 s and 20 s windows with their committed prefix) and one final
  (5 s and 20 s of speech; also with 1 token: encoder + prefill + first token), one at a time;
- bursts: B partial-step requests (10 s windows) submitted at once, and one 5 s final
  submitted right after them (finals have priority inside vLLM);
- streams: N real-time dictation streams (100 ms frames, utterances of 3-10 s with a pause
  every ~6 s, a gap of 0.5-1.5 s between utterances), each utterance a server ``Session``
  (a partial step per 0.5 s of new audio, at most one in flight, a final after the stop),
  all through one ``Scheduler`` into one engine. Partial latency: partial ready - arrival
  of the newest audio it covers; final latency: final ready - stop.
- ``--realtime``: the same streams through vLLM's realtime Qwen3-ASR model
  (``Qwen3ASRRealtimeGeneration``: one resumable request per utterance, a 5 s audio
  segment per input, as its ``/v1/realtime`` endpoint drives it). Segment latency: text of
  a 5 s segment complete - arrival of its last audio; final: last text - stop.

``--generator engine`` (the default) is the server's own vLLM generator
(``build_qwen_engine(..., "vllm")``), which renders each input (tokens, audio features) in
vLLM's renderer worker threads before ``generate``, as vLLM's own API server does;
``--generator direct`` drives vLLM's ``AsyncLLM`` here with the same prompt and priorities
(finals 0, partial steps 1, ``scheduling_policy="priority"``), rendering the same way with
``--inputs async`` or, with ``--inputs sync``, handing ``generate`` the raw prompt so that
vLLM processes it on the event loop (what the server did before): the two side by side
show what rendering off the loop is worth.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from protocol.messages import Final, Partial, ServerMessage
from server.engine.base import (
    Engine,
    GenerationRequest,
    GenerationResult,
    Generator,
    Priority,
    StreamOptions,
)
from server.engine.qwen.policy import ASR_TEXT_TAG, WindowedConfig
from server.engine.qwen.windowed import WindowedEngine
from server.scheduler import Scheduler
from server.session import Session
from tests.bench.qwen_full_size import BASE_VOCAB, SIZES, write_text_side
from tests.bench.report import percentile, write_section
from tests.qwen.helpers import SR, speechlike

logger = logging.getLogger(__name__)

TITLE = "Qwen3-ASR on vLLM on a GPU (production path and vLLM's realtime path)"
RESULTS_DIR = Path(__file__).resolve().parent / "results"

HOP_SEC = 0.5  # a partial step per this much new audio (the server's default)
FRAME_SEC = 0.1
#: What a transcript holds: a language header and ~4 tokens per second of speech.
HEADER_TOKENS = 5
SPEECH_TOKENS_PER_SEC = 4.0
MIN_NEW_TOKENS = 2
ROLLBACK_TOKENS = WindowedConfig().rollback_tokens
BURST_WINDOW_SEC = 10.0
UTTERANCE_SEC = (3.0, 10.0)
GAP_SEC = (0.5, 1.5)
TRAILING_SILENCE_SEC = 0.3  # the client's end-of-speech hangover is part of the utterance
STAGGER_SEC = 2.0
REALTIME_SEGMENT_SEC = 5.0  # Qwen3ASRRealtimeGeneration's segment
GOAL_STREAMS = 64
GOAL_FINAL_P95_MS = 300.0
GOAL_PARTIAL_P95_MS = 500.0

#: The engine's prompt (qwen-asr's chat template: a system turn with the context, the
#: audio, the assistant turn; a forced language adds its header).
PROMPT = (
    "<|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\n"
    "<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\n<|im_start|>assistant\n"
)


@dataclass(frozen=True)
class Plan:
    size: str
    alone_repeats: int = 10
    alone_windows: tuple[float, ...] = (5.0, 20.0)
    bursts: tuple[int, ...] = (1, 4, 16, 64, 128, 256)
    burst_repeats: int = 3
    streams: tuple[int, ...] = (16, 64, 128, 256)
    stream_sec: float = 20.0
    max_model_len: int = 4096
    max_num_seqs: int = 512
    gpu_memory_utilization: float = 0.8  # the server's default
    dtype: str = "bfloat16"
    render: str = "async"
    enforce_eager: bool = False
    time_limit_s: float = 0.0  # 0: none; else skip phases that would start later
    generator: str = "engine"
    realtime: bool = False
    dry_run: bool = False
    #: Further vLLM engine arguments (``--engine-arg renderer_num_workers=4``), e.g. to
    #: compare frontend settings in the same run.
    engine_extra: tuple[tuple[str, Any], ...] = ()


def tokens_for(audio_s: float) -> int:
    """What a real transcript of that much speech holds."""
    return HEADER_TOKENS + round(SPEECH_TOKENS_PER_SEC * audio_s)


def utterance(seconds: float, seed: int) -> np.ndarray:
    """Speech-level noise with a short pause every ~6 s and the end-of-speech hangover."""
    gaps = [(t, t + 0.35) for t in np.arange(6.0, seconds, 6.3)]
    speech = speechlike(seconds, seed=seed, gaps=gaps)
    tail = np.zeros(int(TRAILING_SILENCE_SEC * SR), dtype=np.float32)
    return np.concatenate([speech, tail])


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def stats(ms: Sequence[float]) -> dict[str, float]:
    xs = list(ms)
    return {
        "n": len(xs),
        "p50": percentile(xs, 0.5),
        "p95": percentile(xs, 0.95),
        "max": max(xs) if xs else float("nan"),
    }


# ---------------------------------------------------------------------------------------
# the model's text side and generators


class TokenizerText:
    """ModelText on the checkpoint's tokenizer (encode/decode) with Qwen3-ASR's output
    format (``language X<asr_text>text``) parsed as the engine parses it."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def parse(self, raw: str, forced_language: str | None) -> tuple[str, str]:
        if forced_language:
            return forced_language, raw.strip()
        if ASR_TEXT_TAG not in raw:
            return "", raw.strip()
        meta, text = raw.split(ASR_TEXT_TAG, 1)
        return meta.replace("language", "").strip(), text.strip()

    def random_text(self, rng: np.random.Generator, n_tokens: int) -> str:
        """Text of exactly ``n_tokens`` tokens (ordinary ones), like a transcript."""
        if n_tokens <= 0:
            return ""
        ids = rng.integers(0, BASE_VOCAB, n_tokens).tolist()
        return self.decode(self.encode(self.decode(ids))[:n_tokens])


def engine_args(plan: Plan, model_dir: Path, realtime: bool = False) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": str(model_dir),
        "load_format": "dummy",
        "dtype": plan.dtype,
        "max_model_len": plan.max_model_len,
        "max_num_seqs": plan.max_num_seqs,
        "gpu_memory_utilization": plan.gpu_memory_utilization,
        "limit_mm_per_prompt": {"audio": 1},
        "scheduling_policy": "priority",
        "seed": 0,
        "disable_log_stats": True,
        "enforce_eager": plan.enforce_eager,
    }
    args.update(dict(plan.engine_extra))
    if realtime:
        args["hf_overrides"] = {"architectures": ["Qwen3ASRRealtimeGeneration"]}
        args.pop("scheduling_policy")  # the realtime endpoint runs vLLM's default (FCFS)
    return args


async def close_engine(engine: Any) -> None:
    """Stop vLLM's output handler before its engine core goes away (otherwise it reports
    the engine dead on a clean shutdown), then shut the engine down."""
    handler = getattr(engine, "output_handler", None)
    if isinstance(handler, asyncio.Task) and not handler.done():
        handler.cancel()
        await asyncio.gather(handler, return_exceptions=True)
    await asyncio.to_thread(engine.shutdown)


class DirectVLLM(Generator):
    """vLLM's AsyncLLM driven as the engine drives it: one request per call, the engine's
    prompt, finals at priority 0 and partial steps at 1, abort on cancellation.

    ``render``: "async" renders inputs (tokenizer, audio features) with the engine's
    renderer in its worker threads first, as vLLM's own API server does; "sync" hands
    ``generate`` the prompt dict, which processes it on the event loop."""

    name = "vllm-direct"
    max_batch_size = 1
    supports_abort = True

    def __init__(self, args: dict[str, Any], render: str = "async") -> None:
        self.args = args
        self.render = render
        self.model = str(args["model"])
        self.max_concurrent_batches = 4 * int(args["max_num_seqs"])
        self.engine: Any = None
        self.text: TokenizerText | None = None
        self._ids = 0

    async def load(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.text = TokenizerText(AutoTokenizer.from_pretrained(self.model))
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**self.args))

    async def close(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await close_engine(engine)

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return list(await asyncio.gather(*(self._one(r) for r in batch)))

    async def _one(self, r: GenerationRequest) -> GenerationResult:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        prompt = PROMPT.format(context=r.context)
        if r.language:
            prompt += f"language {r.language}{ASR_TEXT_TAG}"
        params = SamplingParams(
            temperature=0.0,
            max_tokens=r.max_new_tokens,
            ignore_eos=True,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        self._ids += 1
        request_id = f"bench-{self._ids}"
        inputs: Any = {"prompt": prompt + r.prefix, "multi_modal_data": {"audio": [r.audio]}}
        final: Any = None
        try:
            if self.render == "async":
                from vllm.renderers.inputs.preprocess import parse_model_prompt

                parsed = parse_model_prompt(self.engine.model_config, inputs)
                (inputs,) = await self.engine.renderer.render_cmpl_async([parsed])
            async for out in self.engine.generate(
                inputs, params, request_id, priority=int(r.priority)
            ):
                final = out
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.engine.abort(request_id)
            raise
        return GenerationResult(text=r.prefix + final.outputs[0].text, language=r.language)


class FakeModel(Generator):
    """Stands in for the model in ``--dry-run`` (checks the harness on any machine): a
    cost of 20 ms + 1 ms per generated token, random text of the asked length."""

    name = "fake"
    max_batch_size = 1
    max_concurrent_batches = 4096
    supports_abort = True

    def __init__(self) -> None:
        from tests.bench.qwen_full_size import build_tokenizer

        self.text = TokenizerText(build_tokenizer())
        self.model = "fake"
        self.rng = np.random.default_rng(0)

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        n = max(r.max_new_tokens for r in batch)
        await asyncio.sleep(0.02 + 0.001 * n)
        return [
            GenerationResult(text=r.prefix + self.text.random_text(self.rng, r.max_new_tokens))
            for r in batch
        ]


class TranscriptLength(Generator):
    """Gives each request the token count a real transcript of its audio would add after
    its forced prefix (random weights would otherwise run to the budget), and counts what
    reaches the model."""

    def __init__(self, inner: Generator, tokens: TokenizerText) -> None:
        self.inner = inner
        self.tokens_of = tokens
        self.text = getattr(inner, "text", None)  # the policy parses with the model's own
        self.name = inner.name
        self.model = inner.model
        self.max_batch_size = inner.max_batch_size
        self.max_concurrent_batches = inner.max_concurrent_batches
        self.supports_abort = inner.supports_abort
        self.in_flight = 0
        self.peak = 0
        self.requests = {Priority.FINAL: 0, Priority.PARTIAL: 0}
        self.tokens = {Priority.FINAL: 0, Priority.PARTIAL: 0}

    def new_tokens(self, r: GenerationRequest) -> int:
        have = len(self.tokens_of.encode(r.prefix)) if r.prefix else 0
        want = tokens_for(len(r.audio) / SR) - have
        return max(MIN_NEW_TOKENS, min(r.max_new_tokens, want))

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        sized = [replace(r, max_new_tokens=self.new_tokens(r)) for r in batch]
        for r in sized:
            self.requests[r.priority] += 1
            self.tokens[r.priority] += r.max_new_tokens
        self.in_flight += len(sized)
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.inner.generate(sized)
        finally:
            self.in_flight -= len(sized)


# ---------------------------------------------------------------------------------------
# measurements: alone and bursts


def partial_request(text: TokenizerText, window_s: float, seed: int) -> GenerationRequest:
    """A steady partial step: the segment's audio, its committed prefix (the text up to
    the previous step minus the rolled-back tokens), the tokens a transcript adds."""
    rng = np.random.default_rng(seed)
    prefix_tokens = tokens_for(window_s - HOP_SEC) - ROLLBACK_TOKENS
    return GenerationRequest(
        audio=utterance(window_s, seed)[: int(window_s * SR)],
        prefix=text.random_text(rng, prefix_tokens),
        max_new_tokens=tokens_for(window_s) - prefix_tokens,
        priority=Priority.PARTIAL,
    )


def final_request(seconds: float, seed: int, max_new: int | None = None) -> GenerationRequest:
    return GenerationRequest(
        audio=utterance(seconds, seed),
        max_new_tokens=max_new or tokens_for(seconds),
        priority=Priority.FINAL,
    )


async def timed(generator: Generator, request: GenerationRequest) -> float:
    t0 = time.perf_counter()
    await generator.generate([request])
    return 1000 * (time.perf_counter() - t0)


async def measure_alone(generator: Generator, text: TokenizerText, plan: Plan) -> dict[str, Any]:
    cells: dict[str, Callable[[int], GenerationRequest]] = {}
    for w in plan.alone_windows:
        cells[f"partial {w:g} s"] = lambda s, w=w: partial_request(text, w, s)
        cells[f"final {w:g} s"] = lambda s, w=w: final_request(w, s)
        cells[f"final {w:g} s, 1 token"] = lambda s, w=w: final_request(w, s, max_new=1)
    out: dict[str, Any] = {}
    for name, make in cells.items():
        for s in range(2):  # first use of the shapes
            await timed(generator, make(10_000 + s))
        runs = [await timed(generator, make(s)) for s in range(plan.alone_repeats)]
        probe = make(0)
        out[name] = {
            "ms": runs,
            "new_tokens": probe.max_new_tokens,
            "audio_s": len(probe.audio) / SR,
        }
        print(f"  alone {name}: p50 {percentile(runs, 0.5):.1f} ms", flush=True)
    return out


async def measure_burst(
    generator: Generator, text: TokenizerText, size: int, seed: int
) -> dict[str, Any]:
    partials = [partial_request(text, BURST_WINDOW_SEC, seed * 1000 + i) for i in range(size)]
    final = final_request(5.0, seed)
    t0 = time.perf_counter()

    async def one(r: GenerationRequest) -> float:
        await generator.generate([r])
        return 1000 * (time.perf_counter() - t0)

    tasks = [asyncio.create_task(one(r)) for r in partials]
    final_task = asyncio.create_task(one(final))
    done = await asyncio.gather(*tasks)
    final_ms = await final_task
    return {"partial_ms": done, "wall_ms": max(done), "final_ms": final_ms}


async def measure_bursts(
    generator: Generator, text: TokenizerText, plan: Plan, deadline: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    await measure_burst(generator, text, max(plan.bursts), seed=999)  # shapes' first use
    for b in plan.bursts:
        if time.monotonic() > deadline:
            print(f"  time limit: burst {b} not run", flush=True)
            break
        runs = [
            await measure_burst(generator, text, b, seed=b * 10 + k)
            for k in range(plan.burst_repeats)
        ]
        out[str(b)] = runs
        walls = [r["wall_ms"] for r in runs]
        print(
            f"  burst {b}: wall p50 {percentile(walls, 0.5):.0f} ms, final "
            f"{percentile([r['final_ms'] for r in runs], 0.5):.0f} ms",
            flush=True,
        )
    return out


# ---------------------------------------------------------------------------------------
# measurements: real-time dictation streams


@dataclass
class StreamLog:
    partial_ms: list[float] = field(default_factory=list)
    final_ms: list[float] = field(default_factory=list)
    audio_s: float = 0.0  # speech streamed, all utterances
    utterances: int = 0
    errors: int = 0


class Pacer:
    """Real-time frame clock of one utterance: when each frame was appended."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.arrived: dict[int, float] = {}

    async def frames(self, n_total: int) -> AsyncIterator[tuple[int, int]]:
        """(start, end) of each frame, yielded once it has arrived in real time."""
        frame = int(FRAME_SEC * SR)
        for start in range(0, n_total, frame):
            end = min(start + frame, n_total)
            await asyncio.sleep(max(0.0, self.t0 + end / SR - time.perf_counter()))
            self.arrived[end] = time.perf_counter()
            yield start, end

    def arrival(self, n: int) -> float:
        """When sample ``n`` had arrived (the frame holding it)."""
        if n in self.arrived:
            return self.arrived[n]
        later = [k for k in self.arrived if k >= n]
        return self.arrived[min(later)] if later else time.perf_counter()


async def production_stream(
    index: int, engine: Engine, scheduler: Scheduler, stop_at: float, log: StreamLog
) -> None:
    rng = random.Random(index)
    await asyncio.sleep(rng.uniform(0, STAGGER_SEC))
    k = 0
    while time.perf_counter() < stop_at:
        audio = utterance(rng.uniform(*UTTERANCE_SEC), seed=index * 1000 + k)
        pacer = Pacer()

        async def send(msg: ServerMessage, pacer: Pacer = pacer) -> None:
            if isinstance(msg, Partial):
                covered = round((msg.audio_ms or 0.0) * SR / 1000)
                log.partial_ms.append(1000 * (time.perf_counter() - pacer.arrival(covered)))

        session = Session(
            f"s{index}-{k}",
            engine.open_stream(StreamOptions()),
            scheduler,
            send,
            partial_interval_s=HOP_SEC,
        )
        async for start, end in pacer.frames(len(audio)):
            session.append(pcm16(audio[start:end]))
        try:
            final: Final = await session.finish()
            assert final.timings is not None
            log.final_ms.append(final.timings.total_ms)
        except Exception:
            logger.exception("final failed")
            log.errors += 1
        log.audio_s += len(audio) / SR
        log.utterances += 1
        k += 1
        await asyncio.sleep(rng.uniform(*GAP_SEC))


class LoopLag:
    """How late the event loop wakes a 20 ms sleeper: how busy the server's one loop is."""

    def __init__(self) -> None:
        self.lag_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.02)
            self.lag_ms.append(1000 * (time.perf_counter() - t - 0.02))

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stream_summary(
    n: int, log: StreamLog, wall: float, cpu: float, lag: LoopLag, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "streams": n,
        "partial_ms": log.partial_ms,
        "final_ms": log.final_ms,
        "partials_per_audio_s": len(log.partial_ms) / log.audio_s if log.audio_s else 0.0,
        "utterances": log.utterances,
        "errors": log.errors,
        "audio_s": log.audio_s,
        "wall_s": wall,
        "frontend_cpu": cpu / wall if wall else 0.0,
        "loop_lag_ms": stats(lag.lag_ms),
        **extra,
    }


async def measure_streams(
    generator: TranscriptLength, plan: Plan, n: int, seconds: float
) -> dict[str, Any]:
    config = WindowedConfig(tokens_per_sec=None).fit_to_model_len(plan.max_model_len)
    engine = WindowedEngine(generator, config)
    scheduler = Scheduler(generator)
    scheduler.start()
    generator.peak = 0
    before = dict(generator.requests), dict(generator.tokens)
    log = StreamLog()
    t0, c0 = time.perf_counter(), cpu_seconds()
    with LoopLag() as lag:
        try:
            await asyncio.gather(
                *(production_stream(i, engine, scheduler, t0 + seconds, log) for i in range(n))
            )
        finally:
            await scheduler.close()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    extra = {
        "peak_in_flight": generator.peak,
        "requests": {p.name.lower(): generator.requests[p] - before[0][p] for p in Priority},
        "tokens": {p.name.lower(): generator.tokens[p] - before[1][p] for p in Priority},
        "scheduler": asdict(scheduler.stats),
    }
    return stream_summary(n, log, wall, cpu, lag, extra)


# ---------------------------------------------------------------------------------------
# vLLM's realtime Qwen3-ASR path (the peer)


class RealtimePeer:
    """Qwen3ASRRealtimeGeneration on its own AsyncLLM, driven as vLLM's ``/v1/realtime``
    endpoint drives it: per utterance one request whose inputs are 5 s audio segments
    (the model class's own buffer), rendered by the engine's renderer."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.engine: Any = None
        self._ids = 0

    async def load(self) -> None:
        def build() -> Any:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM

            return AsyncLLM.from_engine_args(AsyncEngineArgs(**self.args))

        self.engine = await asyncio.to_thread(build)

    async def close(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await close_engine(engine)

    async def utterance(self, audio: np.ndarray, log: StreamLog, segment_ms: list[float]) -> None:
        from vllm import SamplingParams
        from vllm.engine.protocol import StreamingInput
        from vllm.model_executor.models.qwen3_asr_realtime import Qwen3ASRRealtimeGeneration
        from vllm.renderers.inputs.preprocess import parse_model_prompt
        from vllm.sampling_params import RequestOutputKind

        engine = self.engine
        chunks: asyncio.Queue[np.ndarray | None] = asyncio.Queue()
        targets: list[tuple[int, float]] = []  # (cumulative tokens, segment's audio done)

        def params(n_tokens: int) -> Any:
            return SamplingParams(
                temperature=0.0,
                max_tokens=n_tokens,
                ignore_eos=True,
                output_kind=RequestOutputKind.DELTA,
                skip_clone=True,
            )

        async def audio_stream() -> AsyncIterator[np.ndarray]:
            while (chunk := await chunks.get()) is not None:
                yield chunk

        async def inputs() -> AsyncIterator[Any]:
            prompts = Qwen3ASRRealtimeGeneration.buffer_realtime_audio(
                audio_stream(), asyncio.Queue(), engine.model_config
            )
            async for prompt in prompts:
                ready = time.perf_counter()
                seconds = len(prompt["multi_modal_data"]["audio"]) / SR
                n_tokens = tokens_for(seconds)
                total = (targets[-1][0] if targets else 0) + n_tokens
                targets.append((total, ready))
                (rendered,) = await engine.renderer.render_cmpl_async(
                    [parse_model_prompt(engine.model_config, prompt)]
                )
                yield StreamingInput(prompt=rendered, sampling_params=params(n_tokens))

        self._ids += 1
        got = 0
        done_at: list[float] = []

        async def consume() -> None:
            nonlocal got
            gen = engine.generate(inputs(), params(64), f"rt-{self._ids}")
            async for out in gen:
                if out.outputs:
                    got += len(out.outputs[0].token_ids)
                    while len(done_at) < len(targets) and got >= targets[len(done_at)][0]:
                        done_at.append(time.perf_counter())

        consumer = asyncio.create_task(consume())
        pacer = Pacer()
        async for start, end in pacer.frames(len(audio)):
            chunks.put_nowait(audio[start:end])
        chunks.put_nowait(None)
        stop = time.perf_counter()
        await consumer
        end_t = time.perf_counter()
        # Every segment but the last came from the buffer while audio was streaming. vLLM
        # 0.26 keeps a resumable request's first max_tokens for all its inputs, so each
        # segment generates as many tokens as the first; the last (shorter) segment's text
        # counts as done once its transcript's share has arrived, where a real model would
        # stop.
        for (_, ready), finished in zip(targets[:-1], done_at, strict=False):
            segment_ms.append(1000 * (finished - ready))
        last = done_at[len(targets) - 1] if targets and len(done_at) == len(targets) else end_t
        log.final_ms.append(1000 * (last - stop))
        log.audio_s += len(audio) / SR
        log.utterances += 1
        if not targets or got != targets[0][0] * len(targets):
            log.errors += 1
            logger.warning("realtime: %d tokens for segments %s", got, targets)


async def realtime_stream(
    index: int, peer: RealtimePeer, stop_at: float, log: StreamLog, segment_ms: list[float]
) -> None:
    rng = random.Random(index)
    await asyncio.sleep(rng.uniform(0, STAGGER_SEC))
    k = 0
    while time.perf_counter() < stop_at:
        audio = utterance(rng.uniform(*UTTERANCE_SEC), seed=index * 1000 + k)
        try:
            await peer.utterance(audio, log, segment_ms)
        except Exception:
            logger.exception("realtime utterance failed")
            log.errors += 1
        k += 1
        await asyncio.sleep(rng.uniform(*GAP_SEC))


async def measure_realtime(peer: RealtimePeer, n: int, seconds: float) -> dict[str, Any]:
    log = StreamLog()
    segment_ms: list[float] = []
    t0, c0 = time.perf_counter(), cpu_seconds()
    with LoopLag() as lag:
        await asyncio.gather(
            *(realtime_stream(i, peer, t0 + seconds, log, segment_ms) for i in range(n))
        )
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    out = stream_summary(n, log, wall, cpu, lag, {"segment_ms": segment_ms})
    out["partial_ms"] = segment_ms
    out["partials_per_audio_s"] = len(segment_ms) / log.audio_s if log.audio_s else 0.0
    return out


# ---------------------------------------------------------------------------------------
# run


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "cpu_count": os.cpu_count()}
    for mod in ("torch", "vllm", "transformers"):
        with contextlib.suppress(Exception):
            env[mod] = __import__(mod).__version__
    with contextlib.suppress(Exception), open("/proc/cpuinfo") as f:
        env["host_cpu"] = next(
            line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
        )
    env["gpu"] = gpu_query("name")
    env["driver"] = gpu_query("driver_version")
    return env


def gpu_query(what: str) -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={what}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def save(out: Path, results: dict[str, Any]) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out)


async def run(plan: Plan, out: Path, workdir: Path) -> dict[str, Any]:
    start = time.monotonic()
    deadline = start + plan.time_limit_s if plan.time_limit_s else float("inf")
    results: dict[str, Any] = {
        "plan": asdict(plan),
        "environment": environment(),
        "settings": {
            "hop_s": HOP_SEC,
            "frame_s": FRAME_SEC,
            "header_tokens": HEADER_TOKENS,
            "speech_tokens_per_s": SPEECH_TOKENS_PER_SEC,
            "rollback_tokens": ROLLBACK_TOKENS,
            "burst_window_s": BURST_WINDOW_SEC,
            "utterance_s": UTTERANCE_SEC,
            "gap_s": GAP_SEC,
            "trailing_silence_s": TRAILING_SILENCE_SEC,
            "realtime_segment_s": REALTIME_SEGMENT_SEC,
        },
        "label": SIZES[plan.size].label,
    }
    model_dir = workdir / plan.size
    t0 = time.perf_counter()
    write_text_side(model_dir, SIZES[plan.size])
    results["text_side_s"] = time.perf_counter() - t0
    if plan.realtime:
        return await run_realtime(plan, model_dir, results, out, deadline)
    if plan.dry_run:
        generator: Generator = FakeModel()
    elif plan.generator == "engine":
        generator = build_engine_generator(plan, model_dir)
    else:
        generator = DirectVLLM(engine_args(plan, model_dir), plan.render)
    results["generator"] = type(generator).__name__
    t0 = time.perf_counter()
    await generator.load()
    results["load_s"] = time.perf_counter() - t0
    results["gpu_memory_used_mib"] = gpu_query("memory.used")
    print(f"{plan.size}: loaded in {results['load_s']:.0f} s", flush=True)
    text = generator.text  # type: ignore[attr-defined]
    if not isinstance(text, TokenizerText):
        text = TokenizerText(text.tokenizer)
    save(out, results)
    try:
        results["alone"] = await measure_alone(generator, text, plan)
        save(out, results)
        results["bursts"] = await measure_bursts(generator, text, plan, deadline)
        save(out, results)
        sized = TranscriptLength(generator, text)
        results["streams"] = {}
        await measure_streams(sized, plan, 8, 3.0)  # the path's first use
        for n in plan.streams:
            if time.monotonic() + plan.stream_sec + 15 > deadline:
                print(f"  time limit: {n} streams not run", flush=True)
                break
            r = await measure_streams(sized, plan, n, plan.stream_sec)
            results["streams"][str(n)] = r
            save(out, results)
            print_streams(n, r)
    finally:
        results["wall_s"] = time.monotonic() - start
        save(out, results)
        await generator.close()
    return results


def build_engine_generator(plan: Plan, model_dir: Path) -> Generator:
    from server.engine.qwen import build_qwen_engine

    args = engine_args(plan, model_dir)
    extra = {k: v for k, v in args.items() if k not in ("model", "max_model_len", "dtype")}
    extra.pop("gpu_memory_utilization")
    engine = build_qwen_engine(
        str(model_dir),
        "vllm",
        max_model_len=plan.max_model_len,
        dtype=plan.dtype,
        gpu_memory_utilization=plan.gpu_memory_utilization,
        ignore_eos=True,
        vllm_kwargs=extra,
    )
    return engine.generator


def print_streams(n: int, r: dict[str, Any]) -> None:
    p, f = stats(r["partial_ms"]), stats(r["final_ms"])
    print(
        f"  {n} streams: partial p50 {p['p50']:.0f} p95 {p['p95']:.0f} ms ({p['n']}), final "
        f"p50 {f['p50']:.0f} p95 {f['p95']:.0f} ms ({f['n']}), {r['partials_per_audio_s']:.2f} "
        f"partials/s, loop lag p95 {r['loop_lag_ms']['p95']:.1f} ms, frontend CPU "
        f"{r['frontend_cpu']:.2f}, errors {r['errors']}",
        flush=True,
    )


async def run_realtime(
    plan: Plan, model_dir: Path, results: dict[str, Any], out: Path, deadline: float
) -> dict[str, Any]:
    peer = RealtimePeer(engine_args(plan, model_dir, realtime=True))
    t0 = time.perf_counter()
    await peer.load()
    results["generator"] = "Qwen3ASRRealtimeGeneration"
    results["load_s"] = time.perf_counter() - t0
    results["gpu_memory_used_mib"] = gpu_query("memory.used")
    print(f"{plan.size} realtime: loaded in {results['load_s']:.0f} s", flush=True)
    results["realtime"] = {}
    try:
        await measure_realtime(peer, 4, 6.0)  # first use
        for n in plan.streams:
            if time.monotonic() + plan.stream_sec + 15 > deadline:
                print(f"  time limit: {n} realtime streams not run", flush=True)
                break
            r = await measure_realtime(peer, n, plan.stream_sec)
            results["realtime"][str(n)] = r
            save(out, results)
            print_streams(n, r)
    finally:
        save(out, results)
        await peer.close()
    return results


# ---------------------------------------------------------------------------------------
# docs section


def _cell(ms: Sequence[float]) -> str:
    s = stats(ms)
    return f"{s['p50']:.0f} / {s['p95']:.0f}" if s["n"] else "–"


def device_line(env: dict[str, Any]) -> str:
    return (
        f"{env.get('gpu') or 'no GPU'} (driver {env.get('driver')}), host {env.get('host_cpu')}"
        f" ({env.get('cpu_count')} cores); vLLM {env.get('vllm')}, torch {env.get('torch')}, "
        f"transformers {env.get('transformers')}, Python {env.get('python')}"
    )


def goal_line(label: str, rows: dict[str, Any], path: str) -> str:
    """The goal at GOAL_STREAMS streams, and the most streams that still meet it."""
    met = [
        int(n)
        for n, r in rows.items()
        if stats(r["final_ms"])["p95"] <= GOAL_FINAL_P95_MS
        and stats(r["partial_ms"])["p95"] <= GOAL_PARTIAL_P95_MS
        and not r["errors"]
    ]
    line = f"- **{label}, {path}**: "
    r = rows.get(str(GOAL_STREAMS))
    if r is not None:
        f, p = stats(r["final_ms"])["p95"], stats(r["partial_ms"])["p95"]
        ok = f <= GOAL_FINAL_P95_MS and p <= GOAL_PARTIAL_P95_MS
        line += (
            f"at {GOAL_STREAMS} streams final p95 {f:.0f} ms (goal ≤ {GOAL_FINAL_P95_MS:.0f}), "
            f"partial p95 {p:.0f} ms (goal ≤ {GOAL_PARTIAL_P95_MS:.0f}): goal "
            f"{'met' if ok else 'not met'}. "
        )
    tried = ", ".join(sorted(rows, key=int))
    line += (
        f"Most streams within the goal: {max(met)} (of {tried} tried)."
        if met
        else f"No stream count tried ({tried}) meets the goal."
    )
    return line


def path_of(part: dict[str, Any]) -> str:
    """Which serving path a results file measured."""
    if "realtime" in part:
        return "vLLM realtime"
    gen = part["generator"]
    if gen == "DirectVLLM":
        how = (
            "inputs rendered in vLLM's threads"
            if part["plan"].get("render") == "async"
            else ("inputs processed on the loop")
        )
        return f"AsyncLLM direct, {how}"
    if gen == "FakeModel":
        return "stand-in model (dry run)"
    extra = part["plan"].get("engine_extra") or []
    return "production" + (f" ({', '.join(f'{k}={v}' for k, v in extra)})" if extra else "")


def stream_rows(part: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = part.get("realtime") or part.get("streams") or {}
    return rows


def render(parts: list[dict[str, Any]]) -> str:
    parts = sorted(parts, key=lambda p: (p["label"], path_of(p) != "production", path_of(p)))
    first = parts[0]
    env, st, plan = first["environment"], first["settings"], first["plan"]
    lines = [
        f"GPU: **{env.get('gpu')}** — {device_line(env)}. Full-size shapes with random bf16 "
        'weights (`load_format="dummy"`, config/tokenizer/processor from '
        "tests/bench/qwen_full_size.py); every request generates as many tokens as a real "
        f"transcript of its audio would add ({st['header_tokens']} + "
        f"{st['speech_tokens_per_s']:g} per second of audio, minus the forced prefix; "
        "`ignore_eos`). vLLM engine: "
        f"max_model_len {plan['max_model_len']}, max_num_seqs {plan['max_num_seqs']}, "
        f"gpu_memory_utilization {plan['gpu_memory_utilization']}, CUDA graphs "
        f"{'off' if plan['enforce_eager'] else 'on'}. Production = the server's own vLLM "
        'generator (`build_qwen_engine(..., "vllm")`, `scheduling_policy="priority"`, '
        "finals 0, partial steps 1; each input rendered, tokens and audio features, in "
        "vLLM's renderer threads first, as vLLM's own API server does). AsyncLLM direct = "
        "the same prompt and priorities driven here, rendered the same way or, 'processed "
        "on the loop', handed to `generate` raw so that vLLM processes it on the event "
        "loop. Times in ms, p50 / p95.",
        "",
        "**Alone** (one request at a time; partial = a steady partial step: the segment's "
        "audio, its committed prefix, the tokens a transcript adds; final = the whole "
        "utterance, no prefix; 1 token = audio encoder + prefill + first token):",
        "",
        "| model | path | call | new tokens | p50 / p95 (ms) |",
        "|---|---|---|---:|---:|",
    ]
    for p in parts:
        for name, cell in p.get("alone", {}).items():
            lines.append(
                f"| {p['label']} | {path_of(p)} | {name} | {cell['new_tokens']} | "
                f"{_cell(cell['ms'])} |"
            )
    lines += [
        "",
        f"**Bursts**: B partial steps ({st['burst_window_s']:g} s windows) submitted at "
        "once, then one 5 s final right after them; per-request time from the burst's "
        f"start, {plan['burst_repeats']} bursts per row.",
        "",
        "| model | path | B | all done p50 | partial steps p50 / p95 | steps / s | final "
        "after the burst p50 / max |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in parts:
        for b, runs in p.get("bursts", {}).items():
            walls = [r["wall_ms"] for r in runs]
            each = [x for r in runs for x in r["partial_ms"]]
            finals = [r["final_ms"] for r in runs]
            wall = percentile(walls, 0.5)
            lines.append(
                f"| {p['label']} | {path_of(p)} | {b} | {wall:.0f} | {_cell(each)} | "
                f"{1000 * int(b) / wall:.0f} | {percentile(finals, 0.5):.0f} / "
                f"{max(finals):.0f} |"
            )
    lines += [
        "",
        f"**Real-time dictation streams** ({plan['stream_sec']:g} s of streaming per row, "
        f"{FRAME_SEC * 1000:.0f} ms frames, utterances of {st['utterance_s'][0]:g}–"
        f"{st['utterance_s'][1]:g} s with {st['gap_s'][0]:g}–{st['gap_s'][1]:g} s between "
        f"them, starts spread over {STAGGER_SEC:g} s). Production: the server's Session, "
        f"Scheduler and windowed policy, a partial step per {st['hop_s']:g} s of new audio; "
        "partial = partial ready − arrival of the newest audio it covers; final = final "
        "ready − stop. vLLM realtime: `Qwen3ASRRealtimeGeneration`, one resumable request "
        f"per utterance fed {st['realtime_segment_s']:g} s segments as its `/v1/realtime` "
        'endpoint does; its "partial" is a segment\'s text complete − arrival of the '
        "segment's last audio (text appears once per segment, not per "
        f"{st['hop_s']:g} s); final = last text − stop (vLLM 0.26 gives every input of a "
        "resumable request the first input's token count, so the last, shorter segment "
        "counts as done once its transcript's share of tokens has arrived). Loop lag: how "
        "late the server process's event loop wakes a 20 ms timer (p95); frontend CPU: "
        "CPU seconds of that process per second (it also runs vLLM's input processing).",
        "",
        "| model | path | streams | partial p50 / p95 | final p50 / p95 | final max | "
        "partials / s of audio | most requests in vLLM | loop lag p95 | frontend CPU | "
        "errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in parts:
        for r in stream_rows(p).values():
            f = stats(r["final_ms"])
            lines.append(
                f"| {p['label']} | {path_of(p)} | {r['streams']} | {_cell(r['partial_ms'])} | "
                f"{_cell(r['final_ms'])} | {f['max']:.0f} | {r['partials_per_audio_s']:.2f} | "
                f"{r.get('peak_in_flight', '–')} | {r['loop_lag_ms']['p95']:.1f} | "
                f"{r['frontend_cpu']:.2f} | {r['errors']} |"
            )
    lines += side_by_side(parts)
    lines += ["", "Against the goal (one GPU, final p95 ≤ 300 ms, partial p95 ≤ 500 ms):", ""]
    lines += [goal_line(p["label"], stream_rows(p), path_of(p)) for p in parts if stream_rows(p)]
    lines += reading(parts)
    memory = [
        f"{p['label']} {path_of(p)} {p['gpu_memory_used_mib']} MiB"
        for p in parts
        if p.get("gpu_memory_used_mib")
    ]
    loads = [f"{p['label']} {path_of(p)} {p['load_s']:.0f} s" for p in parts]
    lines += [
        "",
        f"Engine start (dummy weights, compile and CUDA graphs included): {'; '.join(loads)}. "
        f"GPU memory in use after start (nvidia-smi; vLLM takes "
        f"{plan['gpu_memory_utilization']:g} of the card for weights and KV cache): "
        f"{'; '.join(memory) or 'not read'}.",
    ]
    return "\n".join(lines)


def reading(parts: list[dict[str, Any]]) -> list[str]:
    """What the alone and burst figures say, computed from them."""
    out = []
    for p in parts:
        alone, bursts = p.get("alone", {}), p.get("bursts", {})
        longest = max((float(k.split()[1]) for k in alone if k.startswith("final")), default=0)
        full, one = alone.get(f"final {longest:g} s"), alone.get(f"final {longest:g} s, 1 token")
        if not (full and one and bursts):
            continue
        f50, o50 = stats(full["ms"])["p50"], stats(one["ms"])["p50"]
        per_token = (f50 - o50) / max(1, full["new_tokens"] - 1)
        big = max(bursts, key=int)
        runs = bursts[big]
        wall = percentile([r["wall_ms"] for r in runs], 0.5)
        final = percentile([r["final_ms"] for r in runs], 0.5)
        verdict = (
            "the final overtook the queued partial steps"
            if final < wall
            else "the final waited for the burst"
        )
        out.append(
            f"- {p['label']}, {path_of(p)}: a {longest:g} s final takes {f50:.0f} ms alone, "
            f"{o50:.0f} ms of it for the audio encoder, prefill and first token and "
            f"~{per_token:.1f} ms per further token. A 5 s final submitted right after "
            f"{big} partial steps was done after {final:.0f} ms (p50) while the burst took "
            f"{wall:.0f} ms: {verdict}."
        )
    return ["", "Reading the figures:", "", *out] if out else []


def side_by_side(parts: list[dict[str, Any]]) -> list[str]:
    """vLLM realtime against production, same model and stream count."""
    rows = []
    for p in parts:
        if path_of(p) != "production":
            continue
        for q in parts:
            if q["label"] != p["label"] or path_of(q) == "production":
                continue
            for n, r in p["streams"].items():
                o = stream_rows(q).get(n)
                if o is None:
                    continue
                fa, fb = stats(r["final_ms"]), stats(o["final_ms"])
                pa, pb = stats(r["partial_ms"]), stats(o["partial_ms"])
                rows.append(
                    f"| {p['label']} | {path_of(q)} | {n} | {fb['p50'] / fa['p50']:.2f} | "
                    f"{fb['p95'] / fa['p95']:.2f} | {pb['p95'] / pa['p95']:.2f} | "
                    f"{r['partials_per_audio_s'] / max(o['partials_per_audio_s'], 1e-9):.1f} |"
                )
    if not rows:
        return []
    return [
        "",
        "Side by side in the same run (other path ÷ production; > 1: production is faster, "
        "or shows text more often):",
        "",
        "| model | other path | streams | final p50 | final p95 | partial p95 | text "
        "updates per s of audio |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ]


def engine_arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--engine-arg wants KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1.7b")
    parser.add_argument("--out", type=Path, help="results JSON (default: a temp file)")
    parser.add_argument("--render", type=Path, nargs="+", help="write the docs section")
    parser.add_argument("--realtime", action="store_true", help="vLLM's realtime path")
    parser.add_argument("--generator", choices=("engine", "direct"), default="engine")
    parser.add_argument("--streams", type=int, nargs="+")
    parser.add_argument("--bursts", type=int, nargs="+")
    parser.add_argument("--stream-sec", type=float)
    parser.add_argument("--alone-repeats", type=int)
    parser.add_argument("--max-num-seqs", type=int)
    parser.add_argument("--enforce-eager", action="store_true")
    parser.add_argument("--dtype", default="bfloat16", help="float32 for vLLM on a CPU")
    parser.add_argument(
        "--inputs",
        dest="render_inputs",
        choices=("async", "sync"),
        default="async",
        help="direct generator: render inputs in vLLM's threads first, or in generate()",
    )
    parser.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further vLLM engine argument (VALUE read as JSON if it parses)",
    )
    parser.add_argument("--time-limit", type=float, default=0.0, help="seconds (0: none)")
    parser.add_argument("--dry-run", action="store_true", help="a stand-in model (harness)")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit docs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.render:
        parts = [json.loads(p.read_text()) for p in args.render]
        body = render(parts)
        print(body)
        if not args.no_write:
            files = " ".join(str(p) for p in args.render)
            made = (
                "Measured on the GPU machine with `python tests/bench/bench_vllm_gpu.py "
                "--size SIZE --out RESULTS.json` (production path) and `--realtime` (vLLM's "
                "realtime path), vLLM 0.26.0 and the packages it needs on PYTHONPATH there; "
                f"this section is rendered from the saved results ({files})."
            )
            write_section(
                TITLE,
                f"python tests/bench/bench_vllm_gpu.py --render {files}",
                made + "\n\n" + body,
            )
        return
    overrides = {
        "streams": tuple(args.streams) if args.streams else None,
        "bursts": tuple(args.bursts) if args.bursts else None,
        "stream_sec": args.stream_sec,
        "alone_repeats": args.alone_repeats,
        "max_num_seqs": args.max_num_seqs,
    }
    plan = replace(
        Plan(
            size=args.size,
            generator=args.generator,
            realtime=args.realtime,
            dry_run=args.dry_run,
            enforce_eager=args.enforce_eager,
            dtype=args.dtype,
            render=args.render_inputs,
            time_limit_s=args.time_limit,
            engine_extra=tuple(engine_arg(a) for a in args.engine_arg),
        ),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    out = args.out or Path(tempfile.mkstemp(suffix=".json", prefix="vllm_gpu_")[1])
    with tempfile.TemporaryDirectory(prefix="qwen_text_side_") as workdir:
        results = asyncio.run(run(plan, out, Path(workdir)))
    print(f"results: {out}")
    print(render([results]))


if __name__ == "__main__":
    main()
