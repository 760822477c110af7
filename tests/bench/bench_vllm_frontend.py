"""What vLLM's frontend costs per request before the GPU sees it: the renderer (prompt
tokenised, audio turned into log-mel features, the audio placeholder expanded) that the
server's vLLM generator runs in vLLM's renderer threads for every partial step and final.

    .venv-vllm/bin/python tests/bench/bench_vllm_frontend.py            # writes docs/benchmarks.md
    .venv-vllm/bin/python tests/bench/bench_vllm_frontend.py --no-write

CPU only: the renderer is the same code on a GPU machine (no engine is started; the full-size
1.7B text side from tests/bench/qwen_full_size.py: 128 mel bins, the released tokenizer's
shape). Measured, each setting in the same run:

- one request alone (10 s and 20 s windows): its render time;
- a burst of B concurrent 10 s windows: renders per second, and how late the event loop
  wakes a 5 ms timer meanwhile (the server's loop carries every connection);

for ``renderer_num_workers`` 1 (vLLM's default, with its multimodal processor cache) and
more workers (vLLM refuses more than one with the cache on, so those run with
``mm_processor_cache_gb=0``; audio never repeats, so the cache cannot hit for us anyway).
At N real-time streams the server asks for about 2N renders per second (a partial step per
0.5 s of new audio), so renders/s bounds the streams one frontend can feed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from tests.bench.qwen_full_size import SIZES, write_text_side
from tests.bench.report import percentile, write_section
from tests.qwen.helpers import speechlike

TITLE = "vLLM's frontend per request (renderer: tokens and audio features)"
PROMPT = (
    "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n"
    "<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\n<|im_start|>assistant\n"
)
BURST = 64
REPEATS = 5


@dataclass(frozen=True)
class Setting:
    workers: int
    cache: bool  # vLLM's multimodal processor cache (its default; only with one worker)
    on_loop: bool = False  # processed on the event loop, as generate() does with a raw prompt

    @property
    def label(self) -> str:
        where = "on the event loop" if self.on_loop else f"{self.workers} renderer thread(s)"
        return f"{where}, processor cache {'on' if self.cache else 'off'}"


def build_renderer(model_dir: Path, setting: Setting) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.renderers.registry import renderer_from_config

    args = AsyncEngineArgs(
        model=str(model_dir),
        load_format="dummy",
        max_model_len=4096,
        limit_mm_per_prompt={"audio": 1},
        renderer_num_workers=setting.workers,
        **({} if setting.cache else {"mm_processor_cache_gb": 0}),
    )
    return renderer_from_config(args.create_engine_config())


async def render(renderer: Any, audio: np.ndarray, on_loop: bool) -> None:
    from vllm.renderers.inputs.preprocess import parse_model_prompt

    prompt = {"prompt": PROMPT, "multi_modal_data": {"audio": [audio]}}
    parsed = parse_model_prompt(renderer.model_config, prompt)
    if on_loop:
        renderer.render_cmpl([parsed])
        await asyncio.sleep(0)
    else:
        await renderer.render_cmpl_async([parsed])


async def loop_lag(stop: asyncio.Event, out: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.005)
        out.append(max(0.0, loop.time() - t - 0.005) * 1000)


async def measure(renderer: Any, on_loop: bool, seed: int) -> dict[str, Any]:
    rng_seed = iter(range(seed, seed + 100_000))

    def window(seconds: float) -> np.ndarray:
        return speechlike(seconds, seed=next(rng_seed))

    for _ in range(3):  # first use: processor, tokenizer, thread pool
        await render(renderer, window(10.0), on_loop)
    alone: dict[str, list[float]] = {}
    for seconds in (10.0, 20.0):
        times = []
        for _ in range(10):
            audio = window(seconds)
            t = time.perf_counter()
            await render(renderer, audio, on_loop)
            times.append((time.perf_counter() - t) * 1000)
        alone[f"{seconds:g} s"] = times
    rates, lags = [], []
    for _ in range(REPEATS):
        audios = [window(10.0) for _ in range(BURST)]
        stop, lag = asyncio.Event(), []
        watcher = asyncio.create_task(loop_lag(stop, lag))
        t = time.perf_counter()
        await asyncio.gather(*(render(renderer, a, on_loop) for a in audios))
        rates.append(BURST / (time.perf_counter() - t))
        stop.set()
        await watcher
        lags.append(percentile(lag, 0.95))
    return {"alone_ms": alone, "renders_per_s": rates, "loop_lag_p95_ms": lags}


def environment() -> str:
    import torch
    import transformers
    import vllm

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; vLLM {vllm.__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, Python {platform.python_version()}"
    )


def report(rows: list[tuple[Setting, dict[str, Any]]], env: str) -> str:
    base = statistics.median(rows[0][1]["renders_per_s"])
    lines = [
        f"Machine: {env}. CPU only (the renderer runs on the server's CPU on a GPU machine "
        "too); full-size 1.7B text side (128 mel bins). Alone: one request at a time, "
        "median / p95 of 10. Burst: 64 concurrent 10 s windows, median of "
        f"{REPEATS} bursts; loop lag = how late the event loop wakes a 5 ms timer (p95, "
        "median over bursts). The first row is what the server does (vLLM's defaults); "
        "'on the event loop' is what it did before, handing vLLM the raw prompt.",
        "",
        "| where inputs are rendered | alone 10 s (ms) | alone 20 s (ms) | burst renders/s | "
        "× first row | loop lag p95 (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for setting, r in rows:
        a10, a20 = r["alone_ms"]["10 s"], r["alone_ms"]["20 s"]
        rate = statistics.median(r["renders_per_s"])
        lines.append(
            f"| {setting.label} | "
            f"{statistics.median(a10):.1f} / {percentile(a10, 0.95):.1f} | "
            f"{statistics.median(a20):.1f} / {percentile(a20, 0.95):.1f} | {rate:.0f} | "
            f"{rate / base:.2f} | {statistics.median(r['loop_lag_p95_ms']):.1f} |"
        )
    lines += [
        "",
        f"At about 2 renders per second per real-time stream, one frontend with vLLM's "
        f"default renderer feeds at most ~{base / 2:.0f} streams on this machine before "
        "partial steps queue in front of the GPU; more renderer threads raise that where "
        "cores are free (bounded here by this machine's cores).",
    ]
    return "\n".join(lines)


async def run(settings: list[Setting]) -> list[tuple[Setting, dict[str, Any]]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="qwen_text_side_") as tmp:
        model_dir = Path(tmp) / "1.7b"
        write_text_side(model_dir, SIZES["1.7b"])
        for i, setting in enumerate(settings):
            renderer = build_renderer(model_dir, setting)
            try:
                rows.append((setting, await measure(renderer, setting.on_loop, 1000 * (i + 1))))
            finally:
                renderer.shutdown()
            r = rows[-1][1]
            print(
                f"{setting.label}: alone 10 s {statistics.median(r['alone_ms']['10 s']):.1f} ms, "
                f"burst {statistics.median(r['renders_per_s']):.0f} renders/s",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers", type=int, nargs="+", help="renderer threads to try besides 1 (default: 2 4)"
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not edit docs")
    args = parser.parse_args()
    settings = [
        Setting(workers=1, cache=True),
        Setting(workers=1, cache=True, on_loop=True),
        Setting(workers=1, cache=False),
        *(Setting(workers=w, cache=False) for w in (args.workers or (2, 4)) if w > 1),
    ]
    rows = asyncio.run(run(settings))
    body = report(rows, environment())
    print(body)
    if not args.no_write:
        write_section(TITLE, ".venv-vllm/bin/python tests/bench/bench_vllm_frontend.py", body)


if __name__ == "__main__":
    main()
