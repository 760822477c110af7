"""Benchmark: N concurrent real-time clients against the fake engine.

Starts ``tingxie-server --engine fake`` as a child process with a fixed model cost per
call (per batch + per request), then N clients stream real speech in real time
(100 ms frames), each a few utterances. Measures, per configuration:

- partial latency: partial received − moment the audio it covers had been sent
  (``partial.audio_ms`` says how much audio a hypothesis covers);
- final latency: final received − stop sent;
- partials per second of audio (overload shows up as coarser partials).

Batch size 1 (one model call per request, as the article's server does) and batch
size 16 run side by side in one invocation. Results go to docs/benchmarks.md.

    python tests/bench/bench_concurrency.py [--clients 1 4 16 64] [--utterances 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from desktop.client import ServerLink  # noqa: E402
from protocol.messages import Final, Partial  # noqa: E402
from tests.bench.report import machine_description, percentile, write_section  # noqa: E402
from tests.conftest import load_recordings, spawn_fake_server  # noqa: E402

FRAME_BYTES = 3200  # 100 ms


@dataclass
class ClientResult:
    partial_latencies_ms: list[float] = field(default_factory=list)
    final_latencies_ms: list[float] = field(default_factory=list)
    partials: int = 0
    audio_s: float = 0.0
    wrong_finals: int = 0


@dataclass(frozen=True)
class ServerSetup:
    """One server configuration: batch size, and partial steps allowed with a final."""

    batch: int
    partials_with_final: int | None = None

    @classmethod
    def parse(cls, text: str) -> ServerSetup:
        batch, _, cap = text.partition(":")
        return cls(int(batch), int(cap) if cap else None)

    @property
    def label(self) -> str:
        cap = "" if self.partials_with_final is None else f", ≤{self.partials_with_final} w/ final"
        return f"{self.batch}{cap}"


def start_server(
    per_batch_ms: float, per_request_ms: float, setup: ServerSetup
) -> tuple[subprocess.Popen[bytes], str]:
    cap = setup.partials_with_final
    extra = ["--partials-with-final", "fill" if cap is None else str(cap)]
    proc, port = spawn_fake_server(
        "--fake-per-batch-ms",
        str(per_batch_ms),
        "--fake-per-request-ms",
        str(per_request_ms),
        "--max-batch-size",
        str(setup.batch),
        *extra,
        quiet=False,
    )
    return proc, f"ws://127.0.0.1:{port}"


async def run_client(
    url: str, index: int, utterances: int, expected: dict[str, str]
) -> ClientResult:
    from server.engine.fake import text_for_audio  # the fake's answer, to check finals

    recordings = load_recordings()
    result = ClientResult()
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.05 * (index % 20))  # clients do not all start on the same tick
    async with await ServerLink.open(url) as link:
        messages = link.messages()
        for u in range(utterances):
            rec = recordings[(index + u) % len(recordings)]
            pcm = rec.pcm()
            want = expected.setdefault(rec.id, text_for_audio(rec.samples()))
            utterance_id = f"c{index}-{u}"
            await link.start(utterance_id)
            sent_at: list[float] = []  # time by which byte offset i*FRAME was sent
            began = loop.time()
            receiver = asyncio.create_task(_collect_partials(messages, sent_at, result))
            for offset in range(0, len(pcm), FRAME_BYTES):
                await asyncio.sleep(max(0.0, began + offset / 32000 - loop.time()))
                await link.send_audio(pcm[offset : offset + FRAME_BYTES])
                sent_at.append(loop.time())
            await link.stop(utterance_id)
            stop_at = loop.time()
            final = await receiver
            result.final_latencies_ms.append((loop.time() - stop_at) * 1000)
            result.audio_s += len(pcm) / 32000
            if final.text != want:
                result.wrong_finals += 1
    return result


async def _collect_partials(messages, sent_at: list[float], result: ClientResult) -> Final:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    async for message in messages:
        if isinstance(message, Partial):
            now = loop.time()
            frames_covered = int(message.audio_ms / 100.0 + 0.999)  # frames holding that audio
            if 0 < frames_covered <= len(sent_at):
                result.partial_latencies_ms.append((now - sent_at[frames_covered - 1]) * 1000)
            result.partials += 1
        elif isinstance(message, Final):
            return message
    raise RuntimeError("connection closed before final")


async def run_config(url: str, clients: int, utterances: int) -> dict[str, float]:
    expected: dict[str, str] = {}
    results = await asyncio.gather(
        *(run_client(url, i, utterances, expected) for i in range(clients))
    )
    partial = [x for r in results for x in r.partial_latencies_ms]
    final = [x for r in results for x in r.final_latencies_ms]
    audio = sum(r.audio_s for r in results)
    return {
        "partial_p50": statistics.median(partial) if partial else float("nan"),
        "partial_p95": percentile(partial, 0.95),
        "final_p50": statistics.median(final),
        "final_p95": percentile(final, 0.95),
        "partials_per_audio_s": sum(r.partials for r in results) / audio,
        "wrong_finals": sum(r.wrong_finals for r in results),
        "finals": len(final),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--utterances", type=int, default=2, help="per client")
    parser.add_argument("--per-batch-ms", type=float, default=40.0)
    parser.add_argument("--per-request-ms", type=float, default=4.0)
    parser.add_argument(
        "--setups",
        nargs="+",
        default=["1", "16", "16:2"],
        help="server setups BATCH[:PARTIALS_WITH_FINAL]; the first is the baseline",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    setups = [ServerSetup.parse(text) for text in args.setups]

    rows: dict[tuple[ServerSetup, int], dict[str, float]] = {}
    for setup in setups:
        proc, url = start_server(args.per_batch_ms, args.per_request_ms, setup)
        try:
            for n in args.clients:
                began = time.monotonic()
                rows[(setup, n)] = asyncio.run(run_config(url, n, args.utterances))
                print(
                    f"batch {setup.label:>16} clients {n:>3}: {rows[(setup, n)]} "
                    f"({time.monotonic() - began:.0f} s)",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait(30)

    lines = [
        f"Machine: {machine_description()}. Fake engine cost per model call: "
        f"{args.per_batch_ms:g} ms + {args.per_request_ms:g} ms per request in the batch. "
        f"Each client streams {args.utterances} real recordings (1.1–7.1 s) in real time, "
        '100 ms frames; partial steps every 0.5 s of new audio. Batch "16, ≤2 w/ final": '
        "at most 2 partial steps share a model call with finals (`--partials-with-final 2`).",
        "",
        "Partial latency: partial received − the audio it covers had been sent. "
        "Final latency: final received − stop sent. Latencies in ms.",
        "",
        "| clients | batch | partial p50 | partial p95 | final p50 | final p95 "
        "| partials / s of audio | wrong finals |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in args.clients:
        for setup in setups:
            r = rows[(setup, n)]
            lines.append(
                f"| {n} | {setup.label} | {r['partial_p50']:.0f} | {r['partial_p95']:.0f} "
                f"| {r['final_p50']:.0f} | {r['final_p95']:.0f} "
                f"| {r['partials_per_audio_s']:.2f} "
                f"| {int(r['wrong_finals'])}/{int(r['finals'])} |"
            )
    base = setups[0]
    lines += [
        "",
        f"Against batch {base.label} (baseline ÷ setup; > 1 means the setup is faster):",
        "",
        "| clients | batch | partial p50 ratio | final p50 ratio | final p95 ratio |",
        "|---:|---|---:|---:|---:|",
    ]
    for n in args.clients:
        a = rows[(base, n)]
        for setup in setups[1:]:
            b = rows[(setup, n)]
            lines.append(
                f"| {n} | {setup.label} | {a['partial_p50'] / b['partial_p50']:.2f} "
                f"| {a['final_p50'] / b['final_p50']:.2f} | {a['final_p95'] / b['final_p95']:.2f} |"
            )
    command = "python tests/bench/bench_concurrency.py " + " ".join(sys.argv[1:])
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("Concurrent clients, fake engine", command.strip(), body)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
