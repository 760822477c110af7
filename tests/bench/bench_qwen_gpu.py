"""Per-step time of full-size Qwen3-ASR models (0.6B, 1.7B) on a GPU, through the engine's
transformers backend: random bf16 weights with the released configurations
(tests/bench/qwen_full_size.py), exactly 32 generated tokens per request (ignore_eos).

    python tests/bench/bench_qwen_gpu.py --out results.json         # GPU machine: timed
    python tests/bench/bench_qwen_gpu.py --profile-only --out p.json  # GPU: where time goes
    python tests/bench/bench_qwen_gpu.py --render results.json p.json [--compare other.json]
    python tests/bench/bench_qwen_gpu.py --tiny --no-write          # CPU check, tiny widths

Needs qwen-asr 0.0.6 with the transformers 4.57.6 it pins (vLLM is not used). For each size
and utterance length L (5, 15, 30, 60 s of speech-level noise, a pause every ~6 s):

- partial: the windowed policy's step (its bounded window, at most 20 s, with the committed
  prefix) at each 0.5 s point in the last 2 s before L;
- article: the article's policy (qwen-asr's own streaming: each 2 s chunk re-feeds all
  audio so far), its chunk step in the last 2 s before L;
- final: the windowed policy's final (one re-decode of the whole utterance, no prefix),
  with 32 tokens and with 1 token (encoder + prefill + first token: a TTFT);
- batch: 1, 4, 16, 32 partial-step requests (10 s windows) in one ``generate`` call.

Each timed step runs on a fresh stream brought to its point by a stand-in that answers like
a transcript (HEADER_TOKENS + SPEECH_TOKENS_PER_SEC tokens per second of audio, random
tokens of the same tokenizer), so forced prefixes and segments are realistic and reaching
60 s takes seconds; the timed step itself runs the model. Timings are host wall time around
the engine call with the GPU synchronised, after a warm-up, fresh random audio per stream.
``--profile-only`` measures GPU busy time (PyTorch profiler) of a few calls instead.
Results go to JSON; ``--render`` writes the docs/benchmarks.md section from saved JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from server.engine.base import (
    Engine,
    GenerationRequest,
    GenerationResult,
    Generator,
    Priority,
    RequestBuilder,
    StreamOptions,
)
from server.engine.qwen import WindowedConfig, build_qwen_engine
from server.engine.qwen.article import ArticleConfig, ArticleEngine
from server.engine.qwen.policy import ModelText
from server.engine.qwen.windowed import WindowedEngine
from tests.bench.qwen_full_size import BASE_VOCAB, SIZES, VOCAB_SIZE, build_checkpoint
from tests.bench.report import write_section
from tests.qwen.helpers import SR, ArrayAudio, speechlike

logger = logging.getLogger(__name__)

MAX_NEW = 32
HOP_SEC = 0.5
TIMED_SEC = 2.0  # steps ending this close to L are timed
BATCH_WINDOW_SEC = 10.0
#: What the stand-in and the batch requests assume a transcript holds: a language header
#: and about 4 tokens per second of speech (English ~2.5 words/s, Chinese ~4 characters/s).
HEADER_TOKENS = 5
SPEECH_TOKENS_PER_SEC = 4.0
#: A partial step's committed prefix for a BATCH_WINDOW_SEC window: the text up to the
#: previous step (0.5 s earlier) minus the 5 tokens rolled back.
BATCH_PREFIX_TOKENS = HEADER_TOKENS + int(SPEECH_TOKENS_PER_SEC * (BATCH_WINDOW_SEC - HOP_SEC)) - 5
TITLE = "Qwen3-ASR per-step time on a GPU (full-size models, transformers backend)"
#: Qwen3-ASR technical report, vLLM, concurrency 1: time to first token.
REPORT_TTFT_MS = {"0.6b": 92.0, "1.7b": 102.0}


@dataclass(frozen=True)
class Plan:
    sizes: list[str]
    lengths: list[float]
    batches: list[int]
    partial_repeats: int  # streams per length (each gives TIMED_SEC / HOP_SEC steps)
    article_repeats: int  # streams per length (each gives one 2 s chunk)
    final_repeats: int
    batch_repeats: int
    device: str
    dtype: str
    profile_only: bool = False  # only the profiled calls (where the time goes)
    time_limit_s: float = 0.0  # 0: none; else skip what would start later than this


FULL = Plan(
    sizes=["0.6b", "1.7b"],
    lengths=[5, 15, 30, 60],
    batches=[1, 4, 16, 32],
    partial_repeats=4,
    article_repeats=8,
    final_repeats=8,
    batch_repeats=6,
    device="cuda:0",
    dtype="bfloat16",
)
TINY = Plan(
    sizes=["tiny"],
    lengths=[3, 6],
    batches=[1, 4],
    partial_repeats=1,
    article_repeats=2,
    final_repeats=2,
    batch_repeats=2,
    device="cpu",
    dtype="bfloat16",
)


def utterance(seconds: float, seed: int) -> np.ndarray:
    """Speech-level noise with a short pause every ~6 s, as in dictation."""
    gaps = [(t, t + 0.35) for t in np.arange(6.0, seconds, 6.3)]
    return speechlike(seconds, seed=seed, gaps=gaps)


def nearest_rank(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# ---------------------------------------------------------------------------------------
# runners


class StandIn:
    """Answers without the model, as a real model would in length: the prefix continued to
    HEADER_TOKENS + SPEECH_TOKENS_PER_SEC tokens per second of the request's audio, with
    random tokens of the model's tokenizer. Streams reach a given length in seconds with a
    realistic state (segments, forced prefix) before the timed step."""

    def __init__(self, text: ModelText, seed: int) -> None:
        self.text = text
        self.rng = np.random.default_rng(seed)

    def random_text(self, n_tokens: int) -> str:
        if n_tokens <= 0:
            return ""
        ids = self.rng.integers(0, BASE_VOCAB, n_tokens).tolist()
        # random pieces re-encode to slightly more tokens: keep exactly n_tokens
        return self.text.decode(self.text.encode(self.text.decode(ids))[:n_tokens])

    async def __call__(self, builder: RequestBuilder, priority: Priority) -> GenerationResult:
        r = builder()
        target = HEADER_TOKENS + round(SPEECH_TOKENS_PER_SEC * len(r.audio) / SR)
        have = len(self.text.encode(r.prefix)) if r.prefix else 0
        new = min(r.max_new_tokens, target - have)
        return GenerationResult(text=r.prefix + self.random_text(new))


class Recorder:
    """Runs each request on the model alone (no batching) and records it."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.requests: list[GenerationRequest] = []

    async def __call__(self, builder: RequestBuilder, priority: Priority) -> GenerationResult:
        request = builder()
        self.requests.append(request)
        return (await self.generator.generate([request]))[0]


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def sample(seconds: float, requests: list[GenerationRequest], text: ModelText) -> dict[str, Any]:
    return {
        "ms": 1000 * seconds,
        "requests": len(requests),
        "audio_s": [round(len(r.audio) / SR, 3) for r in requests],
        "prefix_tokens": [len(text.encode(r.prefix)) if r.prefix else 0 for r in requests],
    }


# ---------------------------------------------------------------------------------------
# measurements


async def timed_step(
    engine: Engine,
    audio: np.ndarray,
    n: int,
    stand_in: StandIn,
    recorder: Recorder,
    text: ModelText,
) -> dict[str, Any] | None:
    """A fresh stream stepped every HOP_SEC by the stand-in, then the step whose audio ends
    at sample ``n`` on the model; None if that step made no model call (an article step
    between chunks)."""
    stream = engine.open_stream(StreamOptions())
    hop = int(HOP_SEC * SR)
    for m in range(hop, n, hop):
        await stream.step(ArrayAudio(audio, m), stand_in)
    recorder.requests.clear()
    synchronize()
    t0 = time.perf_counter()
    await stream.step(ArrayAudio(audio, n), recorder)
    synchronize()
    dt = time.perf_counter() - t0
    return sample(dt, list(recorder.requests), text) if recorder.requests else None


async def timed_steps(
    engine: Engine, audio: np.ndarray, seed: int, recorder: Recorder, text: ModelText
) -> list[dict[str, Any]]:
    """The steps every HOP_SEC that end within TIMED_SEC of the audio's end, each after a
    stand-in run from the start (so the model's fixed-length output of one timed step does
    not become the next one's prefix)."""
    hop = int(HOP_SEC * SR)
    end = len(audio)
    targets = [n for n in range(hop, end + 1, hop) if n > end - int(TIMED_SEC * SR)]
    out = []
    for i, n in enumerate(targets):
        got = await timed_step(engine, audio, n, StandIn(text, seed * 100 + i), recorder, text)
        if got is not None:
            out.append(got)
    return out


async def timed_final(
    engine: Engine, audio: np.ndarray, recorder: Recorder, text: ModelText
) -> dict[str, Any]:
    stream = engine.open_stream(StreamOptions())
    recorder.requests.clear()
    synchronize()
    t0 = time.perf_counter()
    await stream.finish(ArrayAudio(audio), recorder)
    synchronize()
    return sample(time.perf_counter() - t0, list(recorder.requests), text)


def batch_requests(size: int, stand_in: StandIn, seed: int) -> list[GenerationRequest]:
    """``size`` partial-step requests as B sessions would send them together."""
    return [
        GenerationRequest(
            audio=utterance(BATCH_WINDOW_SEC, seed=seed * 1000 + i),
            prefix=stand_in.random_text(BATCH_PREFIX_TOKENS),
            max_new_tokens=MAX_NEW,
        )
        for i in range(size)
    ]


async def timed_batch(
    generator: Generator, size: int, stand_in: StandIn, seed: int
) -> dict[str, Any]:
    batch = batch_requests(size, stand_in, seed)
    synchronize()
    t0 = time.perf_counter()
    results = await generator.generate(batch)
    synchronize()
    dt = time.perf_counter() - t0
    assert len(results) == size
    return {"ms": 1000 * dt, "batch": size}


def gpu_busy(generator: Generator, batch: list[GenerationRequest]) -> dict[str, float]:
    """Wall time and GPU busy time (the sum of kernel durations, PyTorch profiler) of one
    model call, run on this thread so the profiler sees its operators. The busy time is
    what a runtime without per-kernel launch overhead (CUDA graphs) would still need."""
    from torch.profiler import ProfilerActivity, profile

    run = generator._generate_sync  # type: ignore[attr-defined]
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        synchronize()
        t0 = time.perf_counter()
        run(batch, threading.Event())
        synchronize()
        wall = time.perf_counter() - t0
    busy_us = sum(getattr(e, "self_device_time_total", 0.0) for e in prof.key_averages())
    return {"wall_ms": 1000 * wall, "gpu_ms": busy_us / 1000}


def gpu_busy_calls(
    generator: Generator, plan: Plan, stand_in: StandIn, deadline: float
) -> dict[str, list[dict[str, float]]]:
    """Profiled calls: the final of the longest utterance (32 tokens and 1) and the
    smallest and largest batch of partial-step requests; each after an unprofiled call of
    the same shape. Stops early (keeping what it has) past ``deadline`` (monotonic)."""
    longest = max(plan.lengths)
    audio = utterance(longest, seed=int(longest) * 100 + 90)
    calls = {
        f"final {longest:g} s": [GenerationRequest(audio=audio, max_new_tokens=MAX_NEW)],
        f"final {longest:g} s, 1 token": [GenerationRequest(audio=audio, max_new_tokens=1)],
    }
    for b in (min(plan.batches), max(plan.batches)):
        calls[f"batch {b}"] = batch_requests(b, stand_in, seed=b + 5)
    run = generator._generate_sync  # type: ignore[attr-defined]
    gpu_busy(generator, calls[f"final {longest:g} s, 1 token"])  # the profiler's start-up
    out: dict[str, list[dict[str, float]]] = {}
    for name, batch in calls.items():
        if time.monotonic() > deadline:
            print(f"  time limit: {name} not profiled", flush=True)
            break
        run(batch, threading.Event())
        out[name] = [gpu_busy(generator, batch) for _ in range(2)]
        print(f"  profiled {name}: {out[name]}", flush=True)
    return out


def host_cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def installed_version(dist: str) -> str:
    """``dist``'s version, or "not installed" (the figures say what ran)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def environment(generator: Generator, device: str) -> dict[str, Any]:
    import torch
    import transformers

    env: dict[str, Any] = {
        "host_cpu": f"{host_cpu()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "qwen_asr": installed_version("qwen-asr"),
        "device": device,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        env["cuda"] = torch.version.cuda
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            env["driver"] = "unknown"
    else:
        env["gpu"] = None
        env["cpu"] = platform.processor() or platform.machine()
    model = getattr(generator, "_model", None)
    env["attn_implementation"] = getattr(getattr(model, "config", None), "_attn_implementation", "")
    return env


async def bench_size(
    size_name: str,
    plan: Plan,
    workdir: Path,
    results: dict[str, Any],
    save: Any,
    deadline: float,
) -> None:
    ckpt = workdir / size_name
    t0 = time.perf_counter()
    params = build_checkpoint(ckpt, size_name, device=plan.device.split(":")[0], seed=0)
    built = time.perf_counter() - t0
    engine = build_qwen_engine(
        str(ckpt),
        "transformers",
        "windowed",
        device=plan.device,
        dtype=plan.dtype,
        max_batch_size=max(plan.batches),
        windowed=WindowedConfig(max_new_tokens=MAX_NEW, tokens_per_sec=None),
        ignore_eos=True,
    )
    generator = engine.generator
    t0 = time.perf_counter()
    await generator.load()
    loaded = time.perf_counter() - t0
    text: ModelText = generator.text  # type: ignore[attr-defined]
    article = ArticleEngine(generator, ArticleConfig(max_new_tokens=MAX_NEW))
    assert isinstance(engine, WindowedEngine)
    first_token = WindowedEngine(generator, replace(engine.config, max_new_tokens=1))
    recorder = Recorder(generator)
    entry: dict[str, Any] = {"label": SIZES[size_name].label, "parameters": params}
    env = environment(generator, plan.device)
    if plan.profile_only:
        entry["gpu_busy_environment"] = env
    else:
        entry.update(
            build_s=round(built, 1), load_s=round(loaded, 1), environment=env, lengths={}, batch={}
        )
    results["models"][size_name] = entry
    try:
        # warm-up: kernels, cuBLAS handles and the allocator's pools for the largest shapes
        warm = StandIn(text, seed=99)
        await timed_steps(engine, utterance(4.0, seed=99), 99, recorder, text)
        await timed_final(engine, utterance(max(plan.lengths), seed=98), recorder, text)
        await timed_batch(generator, max(plan.batches), warm, seed=97)
        for length in [] if plan.profile_only else plan.lengths:
            if time.monotonic() > deadline:
                print(f"time limit: {size_name} {length:g} s not measured", flush=True)
                break
            row: dict[str, list[dict[str, Any]]] = {
                "partial": [],
                "article": [],
                "final": [],
                "final_1_token": [],
            }
            # one untimed call of each kind at this length: first use of its shapes
            warm_audio = utterance(length, seed=int(length) * 100 + 99)
            chunk_end = int(length // 2 * 2 * SR)  # the article's last 2 s chunk boundary
            warm = StandIn(text, seed=99)
            row["warmup"] = [
                x
                for x in (
                    await timed_step(engine, warm_audio, len(warm_audio), warm, recorder, text),
                    await timed_step(article, warm_audio, chunk_end, warm, recorder, text),
                    await timed_final(engine, warm_audio, recorder, text),
                    await timed_final(first_token, warm_audio, recorder, text),
                )
                if x is not None
            ]
            for r in range(plan.partial_repeats):
                audio = utterance(length, seed=int(length) * 100 + r)
                row["partial"] += await timed_steps(engine, audio, r, recorder, text)
            for r in range(plan.article_repeats):
                audio = utterance(length, seed=int(length) * 100 + 50 + r)
                row["article"] += await timed_steps(article, audio, r, recorder, text)
            for r in range(plan.final_repeats):
                audio = utterance(length, seed=int(length) * 100 + 70 + r)
                row["final"].append(await timed_final(engine, audio, recorder, text))
                row["final_1_token"].append(await timed_final(first_token, audio, recorder, text))
            entry["lengths"][f"{length:g}"] = row
            print(f"{size_name} {length:g} s: {summary_line(row)}", flush=True)
            save()
        for b in [] if plan.profile_only else plan.batches:
            if time.monotonic() > deadline:
                print(f"time limit: {size_name} batch {b} not measured", flush=True)
                break
            warm_b = StandIn(text, seed=b)
            await timed_batch(generator, b, warm_b, seed=b)  # this shape's warm-up
            runs = [
                await timed_batch(generator, b, warm_b, seed=b * 10 + r)
                for r in range(plan.batch_repeats)
            ]
            entry["batch"][str(b)] = [x["ms"] for x in runs]
            p50 = float(np.median(entry["batch"][str(b)]))
            print(f"{size_name} batch {b}: {p50:.0f} ms, {1000 * b / p50:.1f} req/s", flush=True)
            save()
        if plan.profile_only:
            try:
                busy = gpu_busy_calls(generator, plan, StandIn(text, seed=5), deadline)
                entry["gpu_busy"] = busy
            except Exception as e:  # the profiler is a bonus: keep the timings regardless
                logger.exception("profiling failed")
                entry["gpu_busy_error"] = f"{type(e).__name__}: {e}"
            save()
    finally:
        await generator.close()
        del generator, engine, article, first_token
        import gc

        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def summary_line(row: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    for key in ("partial", "article", "final", "final_1_token"):
        ms = [s["ms"] for s in row[key]]
        parts.append(f"{key} {np.median(ms):.0f} ms (n={len(ms)})" if ms else f"{key} -")
    return ", ".join(parts)


async def run(plan: Plan, out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "settings": {
            "max_new_tokens": MAX_NEW,
            "hop_s": HOP_SEC,
            "timed_s": TIMED_SEC,
            "batch_window_s": BATCH_WINDOW_SEC,
            "batch_prefix_tokens": BATCH_PREFIX_TOKENS,
            "header_tokens": HEADER_TOKENS,
            "speech_tokens_per_s": SPEECH_TOKENS_PER_SEC,
            "dtype": plan.dtype,
            "repeats": {
                "partial_streams": plan.partial_repeats,
                "article_streams": plan.article_repeats,
                "final": plan.final_repeats,
                "batch": plan.batch_repeats,
            },
        },
        "models": {},
    }

    def save() -> None:
        out.write_text(json.dumps(results, indent=1))

    start = time.monotonic()
    deadline = start + plan.time_limit_s if plan.time_limit_s else math.inf
    with tempfile.TemporaryDirectory(prefix="qwen_full_size_") as tmp:
        for size_name in plan.sizes:
            if time.monotonic() > deadline:
                print(f"time limit: {size_name} not measured", flush=True)
                continue
            await bench_size(size_name, plan, Path(tmp), results, save, deadline)
            save()
    return results


# ---------------------------------------------------------------------------------------
# report


def _stats(samples: list[dict[str, Any]]) -> tuple[float, float, int]:
    ms = [s["ms"] for s in samples]
    return float(np.median(ms)), nearest_rank(ms, 0.95), len(ms)


def _span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if format(lo, fmt) == format(hi, fmt) else f"{lo:{fmt}}–{hi:{fmt}}"


def _input(samples: list[dict[str, Any]]) -> str:
    """What the timed requests fed the model: audio seconds and forced-prefix tokens."""
    secs = [a for s in samples for a in s["audio_s"]]
    toks = [float(t) for s in samples for t in s["prefix_tokens"]]
    return f"{_span(secs, '.1f')} s + {_span(toks, '.0f')} tok"


def device_line(env: dict[str, Any]) -> str:
    if env.get("gpu"):
        host = f", host {env['host_cpu']}" if env.get("host_cpu") else ""
        return (
            f"{env['gpu']} ({env['gpu_memory_gib']} GiB, driver {env['driver']}, "
            f"CUDA {env['cuda']}{host}), torch {env['torch']}, transformers "
            f"{env['transformers']}, qwen-asr {env['qwen_asr']}, Python {env['python']}"
        )
    return f"CPU ({env.get('cpu')}), torch {env['torch']}, transformers {env['transformers']}"


def render(results: dict[str, Any], other: dict[str, Any] | None = None) -> str:
    """The docs/benchmarks.md section, from results JSON alone (``other``: the same
    measurements on a second machine, for their p50s side by side)."""
    models = results["models"]
    env = next(iter(models.values()))["environment"]
    st = results["settings"]
    n_new = st["max_new_tokens"]
    lines = [
        f"Device: **{device_line(env)}**.",
        "",
        "Engine: ours, on its **transformers backend** (qwen-asr's model code, attention "
        f"`{env['attn_implementation']}`, one `generate` call per batch, no CUDA graphs); "
        "vLLM, with the torch build it pins, could not be installed on that offline "
        "machine. **bf16, random weights with the released configurations** (0.6B and "
        "1.7B: layer counts, widths, heads, audio encoder windows, "
        f"{VOCAB_SIZE:,}-row vocabulary; built by tests/bench/qwen_full_size.py), "
        f"**{n_new} generated tokens per request** (end of sequence ignored).",
        "",
        "Wall time per engine call in ms, p50 / p95 (nearest rank: with under 20 samples the "
        "p95 is the largest), GPU synchronised, after a warm-up, fresh random audio per "
        "stream. Utterances: speech-level noise with a short pause every ~6 s.",
        "",
        f"- *partial*: the windowed policy's step (every {st['hop_s']} s; one window of at "
        "most 20 s plus its committed prefix; a step that closes a segment decodes the "
        f"closed piece too); the steps ending in the last {st['timed_s']:g} s.",
        "- *article*: the article's policy, qwen-asr's own streaming: each 2 s chunk re-feeds "
        f"all audio so far with the previous text as prefix; its chunk in the last "
        f"{st['timed_s']:g} s.",
        "- *final*: the windowed policy's final: one re-decode of the whole utterance, no "
        "prefix. *final, 1 token*: the same request stopped after one token (audio encoder "
        "+ prefill + first token: a time to first token).",
        "- *input*: audio seconds and forced-prefix tokens per model request of the timed "
        "steps. Each timed step runs on a stream brought to that point by a stand-in that "
        f"answers like a transcript ({st.get('header_tokens', HEADER_TOKENS)} + "
        f"{st.get('speech_tokens_per_s', SPEECH_TOKENS_PER_SEC):g} tokens per second of "
        f"audio, random tokens of the same tokenizer), so prefixes have realistic lengths; "
        f"the timed step itself generates {n_new}.",
        "",
        "| model | utterance | partial p50 / p95 | partial input | article p50 / p95 "
        "| article input | final p50 / p95 | final, 1 token p50 / p95 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in models.values():
        for length, row in m["lengths"].items():
            cells = []
            for key in ("partial", "article", "final", "final_1_token"):
                p50, p95, _ = _stats(row[key])
                cells.append(f"{p50:.0f} / {p95:.0f}")
            lines.append(
                f"| {m['label']} | {length} s | {cells[0]} | {_input(row['partial'])} | "
                f"{cells[1]} | {_input(row['article'])} | {cells[2]} | {cells[3]} |"
            )
    first_row = next(iter(next(iter(models.values()))["lengths"].values()))
    counts = [_stats(first_row[k])[2] for k in ("partial", "article", "final")]
    lines += [
        "",
        f"Samples per cell: partial {counts[0]}, article {counts[1]}, final {counts[2]}.",
        "",
        f"Batch scaling: one `generate` call with B partial-step requests "
        f"({st['batch_window_s']:g} s windows, {st['batch_prefix_tokens']}-token prefixes, "
        f"{n_new} new tokens): what the server's scheduler hands the backend when B "
        "sessions step at once.",
        "",
        "| model | batch | call p50 / p95 (ms) | requests / s | per-request gain vs batch 1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in models.values():
        base = 0.0
        for b, ms in m["batch"].items():
            p50 = float(np.median(ms))
            rate = 1000 * int(b) / p50
            base = base or rate
            lines.append(
                f"| {m['label']} | {b} | {p50:.0f} / {nearest_rank(ms, 0.95):.0f} | "
                f"{rate:.1f} | {rate / base:.2f}× |"
            )
    lines += gpu_busy_table(models)
    if other is not None:
        lines += machine_comparison(results, other)
    lines += ["", *reading(results)]
    return "\n".join(lines)


def machine_comparison(results: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """p50s of the same measurements on another machine of the same kind."""
    pairs = [(m, other["models"][k]) for k, m in results["models"].items() if k in other["models"]]
    pairs = [(a, b) for a, b in pairs if a.get("lengths") and b.get("lengths")]
    if not pairs:
        return []
    env_b = pairs[0][1]["environment"]
    lines = [
        "",
        f"The same measurements in another run on a second machine of the same kind "
        f"({device_line(env_b)}; that run also made one untimed call per cell first), p50 "
        "in ms, this table's machine / the second:",
        "",
        "| model | utterance | partial | article | final | final, 1 token |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for a, b in pairs:
        for length in a["lengths"]:
            if length not in b["lengths"]:
                continue
            ra, rb = a["lengths"][length], b["lengths"][length]
            cells = [
                f"{_stats(ra[k])[0]:.0f} / {_stats(rb[k])[0]:.0f}"
                for k in ("partial", "article", "final", "final_1_token")
            ]
            lines.append(f"| {a['label']} | {length} s | " + " | ".join(cells) + " |")
    return lines


def _busy(m: dict[str, Any], call: str) -> tuple[float, float]:
    """(wall, GPU busy) medians in ms of a profiled call."""
    runs = m["gpu_busy"][call]
    return (
        float(np.median([r["wall_ms"] for r in runs])),
        float(np.median([r["gpu_ms"] for r in runs])),
    )


def gpu_busy_table(models: dict[str, Any]) -> list[str]:
    profiled = {k: m for k, m in models.items() if m.get("gpu_busy")}
    if not profiled:
        return []
    env = next(iter(profiled.values())).get("gpu_busy_environment")
    where = f" (a separate run: {device_line(env)})" if env else ""
    lines = [
        "",
        f"Where the time goes{where}: calls under the PyTorch profiler, median of 2. GPU "
        "busy = the sum of kernel durations; for the rest of the wall time the GPU waits "
        "for the host (Python, one launch per kernel; the profiler adds to the wall time).",
        "",
        "| model | call | wall (ms) | GPU busy (ms) | busy share |",
        "|---|---|---:|---:|---:|",
    ]
    for m in profiled.values():
        for call in m["gpu_busy"]:
            wall, gpu = _busy(m, call)
            lines.append(
                f"| {m['label']} | {call} | {wall:.0f} | {gpu:.1f} | {100 * gpu / wall:.0f}% |"
            )
    return lines


def busy_reading(m: dict[str, Any], long: str, n_new: int) -> str:
    """The same kernels without host overhead: what the GPU itself needs for a final."""
    _, g32 = _busy(m, f"final {long} s")
    _, g1 = _busy(m, f"final {long} s, 1 token")
    per_iter = (g32 - g1) / (n_new - 1)
    tokens = transcript_tokens(float(long))
    return (
        f"The GPU itself is busy {g32:.0f} ms of the {long} s final ({g1:.0f} ms for the "
        f"encoder, prefill and first token, {per_iter:.1f} ms per further token): the same "
        f"kernels with no host overhead (replayed from CUDA graphs) would need "
        f"~{g1 + per_iter * (tokens - 1):.0f} ms for ~{tokens:.0f} tokens, a floor for this "
        "backend's kernels, not a vLLM figure (vLLM runs kernels of its own)."
    )


def transcript_tokens(seconds: float) -> float:
    """What a real transcript of that much speech holds (the stand-in's assumption)."""
    return HEADER_TOKENS + SPEECH_TOKENS_PER_SEC * seconds


def first_calls_note(models: dict[str, Any]) -> str:
    """How often a cell's first call was its slowest (first use of new shapes)."""
    cells = [
        row[k]
        for m in models.values()
        for row in m.get("lengths", {}).values()
        for k in ("partial", "article", "final", "final_1_token")
        if len(row[k]) > 1
    ]
    if not cells:
        return ""
    slowest = sum(1 for c in cells if c[0]["ms"] == max(s["ms"] for s in c))
    ratio = float(np.median([c[0]["ms"] / _stats(c)[0] for c in cells]))
    return (
        f"In {slowest} of {len(cells)} cells of the first table the first call was the "
        f"slowest (median first call / p50: {ratio:.2f}), most likely first use of new "
        "input shapes, which a running server pays once; its p95s include these calls."
    )


def reading(results: dict[str, Any]) -> list[str]:
    """What the numbers say, computed from them."""
    n_new = results["settings"]["max_new_tokens"]
    models = results["models"]
    out = ["Reading the numbers:", ""]
    note = first_calls_note(models)
    for name, m in models.items():
        rows = m["lengths"]
        keys = list(rows)
        short, long = keys[0], keys[-1]
        p50 = {k: {key: _stats(rows[k][key])[0] for key in rows[k]} for k in keys}
        partials = [p50[k]["partial"] for k in keys]
        articles = [p50[k]["article"] for k in keys]
        per_token = (p50[short]["final"] - p50[short]["final_1_token"]) / (n_new - 1)
        line = (
            f"- **{m['label']}**: a partial step takes {min(partials):.0f}–{max(partials):.0f} "
            f"ms at every utterance length, the article's step {min(articles):.0f}–"
            f"{max(articles):.0f} ms ({p50[long]['article'] / p50[long]['partial']:.2f}× the "
            f"partial step at {long} s). On this backend both are dominated by the {n_new} "
            f"decode iterations, ~{per_token:.0f} ms each, while the audio encoder and "
            f"prefill (the 1-token column: {p50[short]['final_1_token']:.0f} ms at {short} s, "
            f"{p50[long]['final_1_token']:.0f} ms at {long} s) are the part that grows with "
            "what a step feeds: the article's re-fed audio costs little next to the decode "
            "loop here, and more next to a fast one."
        )
        if m.get("gpu_busy"):
            _, g32 = _busy(m, f"final {long} s")
            _, g1 = _busy(m, f"final {long} s, 1 token")
            _, gb1 = _busy(m, f"batch {min(int(b) for b in m['batch'])}")
            line += (
                f" The GPU is busy only ~{(g32 - g1) / (n_new - 1):.1f} ms of each decode "
                f"iteration and {gb1:.0f} ms of a whole batch-1 partial step: the rest is "
                "the host (Python, one launch per small kernel)."
            )
        ttft = REPORT_TTFT_MS.get(name)
        if ttft:
            line += (
                f" The Qwen3-ASR report gives vLLM a time to first token of {ttft:.0f} ms "
                f"at concurrency 1; our 1-token calls take {p50[short]['final_1_token']:.0f}–"
                f"{p50[long]['final_1_token']:.0f} ms, the same order. A TTFT is not a "
                f"{n_new}-token step: the {n_new - 1} further decode iterations are where "
                "this backend spends its time and where vLLM (CUDA graphs, fused kernels, "
                "continuous batching) is built to be fast."
            )
        out.append(line)
        ends, est = [], {}
        for k in (short, long):
            tokens = transcript_tokens(float(k))
            est[k] = p50[k]["final_1_token"] + per_token * (tokens - 1)
            ends.append(
                f"{k} s: {p50[k]['final']:.0f} ms with {n_new} tokens, ~{est[k]:.0f} ms with "
                f"a real transcript's ~{tokens:.0f}"
            )
        end_line = (
            "  End of speech → final = the final re-decode (" + "; ".join(ends) + ") + up "
            f"to one partial step already running (the server lets it finish: "
            f"{min(partials):.0f}–{max(partials):.0f} ms) + network + typing. On this "
            f"backend a {short} s dictation's final text is ready "
            f"{est[short] / 1000:.1f}–{(est[short] + max(partials)) / 1000:.1f} s after "
            "the speaker stops, before network and typing."
        )
        if m.get("gpu_busy"):
            end_line += " " + busy_reading(m, long, n_new)
        out.append(end_line)
    first = next(iter(models.values()))
    sizes = sorted(int(b) for b in first["batch"])
    if len(sizes) > 1:
        one, most = (float(np.median(first["batch"][str(b)])) for b in (sizes[0], sizes[-1]))
        rate = 1000 * sizes[-1] / most
        out.append(
            f"- Partial steps are asked for every {results['settings']['hop_s']} s of audio; "
            "a step slower than that means one session's partials run back to back (at most "
            "one in flight) and the shown text trails the audio by about a step. Batching "
            f"is nearly free on this backend ({first['label']}): {sizes[-1]} sessions' steps "
            f"in one call take {most / one:.1f}× one session's, {rate:.0f} partial steps per "
            f"second in all, enough for ~{rate * results['settings']['hop_s']:.0f} sessions "
            f"stepping every {results['settings']['hop_s']} s."
        )
    if note:
        out += ["- " + note]
    return out


# ---------------------------------------------------------------------------------------


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Results of several runs with the same settings as one; later runs add to a model's
    entry (a profile-only run adds its profiled calls to the timed run's)."""
    settings = parts[0]["settings"]
    if any(p["settings"] != settings for p in parts):
        raise ValueError("results were measured with different settings")
    models: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, entry in part["models"].items():
            models.setdefault(name, {}).update(entry)
    return {"settings": settings, "models": models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="results JSON (default: a temp file)")
    parser.add_argument(
        "--render", type=Path, nargs="+", help="write the docs section from these JSONs"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny widths on the CPU (a check)")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES))
    parser.add_argument("--lengths", type=float, nargs="+")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit docs")
    parser.add_argument(
        "--profile-only", action="store_true", help="only where the time goes (profiler)"
    )
    parser.add_argument("--time-limit", type=float, default=0.0, help="seconds (0: none)")
    parser.add_argument(
        "--compare", type=Path, help="results of another machine of the same kind (p50s)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.render:
        results = merge([json.loads(p.read_text()) for p in args.render])
    else:
        plan = TINY if args.tiny else FULL
        plan = replace(
            plan,
            sizes=args.sizes or plan.sizes,
            lengths=args.lengths or plan.lengths,
            profile_only=args.profile_only,
            time_limit_s=args.time_limit,
        )
        out = args.out or Path(tempfile.mkstemp(suffix=".json", prefix="qwen_gpu_")[1])
        results = asyncio.run(run(plan, out))
        print(f"results: {out}")
        if plan.profile_only:  # rendered together with a timed run's results
            print(json.dumps(results["models"], indent=1))
            return
    other = json.loads(args.compare.read_text()) if args.compare else None
    body = render(results, other)
    print(body)
    if not args.no_write and not args.tiny:
        files = [*(args.render or []), *([args.compare] if args.compare else [])]
        command = "python tests/bench/bench_qwen_gpu.py" + (
            " --render "
            + " ".join(str(f) for f in args.render or [])
            + (f" --compare {args.compare}" if args.compare else "")
        )
        made = (
            "Measured on the GPU machine with `python tests/bench/bench_qwen_gpu.py --out "
            "RESULTS.json` (timed calls; `--sizes` for one model) and `--profile-only` "
            "(profiled calls), with qwen-asr 0.0.6 and the transformers 4.57.6 it pins "
            "installed there; this section is rendered from the saved results "
            f"({', '.join(f'`{f}`' for f in files) or 'this run'})."
        )
        write_section(TITLE, command, made + "\n\n" + body)


if __name__ == "__main__":
    main()
