"""The server under abuse: slots, fairness and memory, for any checkout (before/after).

Starts ``tingxie-server --engine fake`` from ``--root`` (default: this checkout) as a
child process and measures, from one client process on loopback:

1. **Slots** — ``--hostile`` sockets (default 2,000: a third handshaken and idle, a
   third handshaken and stopped inside a frame header, a third TCP-only and silent)
   against the default 256-connection limit; then an honest client speaking the
   original article's protocol (no hello: start, 1 s of PCM, stop) tries
   ``--honest-runs`` times. Reported: connections held by hostile sockets, honest
   successes, connect-to-final p50/p95.
2. **Fairness and memory** — ``--abusers`` connections (default 48) each stop
   ``--utterances`` utterances (4, the per-connection limit) of ``--seconds`` s (60)
   sent as fast as possible, while an honest client dictates 1 s utterances one after
   another. Reported: the honest stop-to-final p50/p95, the server's resident memory
   (VmRSS) before, at its peak and per abusive connection, over ``--rounds`` rounds
   (3) with RSS after each round once everything is closed.

The fake engine costs ``--per-batch-ms`` + ``--per-request-ms`` per request a call
(defaults 50 + 50, batches of 16), so a backlog of finals takes seconds to drain.

    python tests/bench/bench_abuse.py [--root DIR] [--hostile 2000] [--abusers 48]

Prints a Markdown table and writes JSON to ``--json`` if given. The open-files soft
limit is raised to the hard limit for the hostile sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.report import machine_description, percentile  # noqa: E402

PCM_SECOND = b"\x10\x00" * 16000  # quiet but not silent: the fake engine answers
FRAME = 32000  # 1 s frames, the default largest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            body: dict[str, Any] = json.loads(r.read())
            return body
    except urllib.error.HTTPError as err:
        body = json.loads(err.read())
        return body


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def start_server(root: Path, args: argparse.Namespace) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--engine",
            "fake",
            "--port",
            str(port),
            "--log-level",
            args.server_log_level,
            "--fake-per-batch-ms",
            str(args.per_batch_ms),
            "--fake-per-request-ms",
            str(args.per_request_ms),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(args.server_log, "ab") if args.server_log else subprocess.DEVNULL,  # noqa: SIM115
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if health(port).get("model_state") == "ready":
                return Server(proc, port)
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(40)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


async def next_of(ws: ClientConnection, kinds: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
        if isinstance(raw, str):
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") in kinds:
                return message


async def article_client(url: str, timeout: float = 30.0) -> tuple[bool, float, str]:
    """(got a final, seconds from connect to final, what happened otherwise)."""
    began = time.monotonic()
    try:
        async with websockets.connect(url, open_timeout=timeout, max_size=None) as ws:
            await ws.send(json.dumps({"event": "start"}))
            await ws.send(PCM_SECOND)
            await ws.send(json.dumps({"event": "stop"}))
            message = await next_of(ws, {"final", "error"}, timeout)
    except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as exc:
        return False, time.monotonic() - began, type(exc).__name__
    took = time.monotonic() - began
    if message["type"] == "final":
        return True, took, "final"
    return False, took, str(message.get("code"))


# ---------------------------------------------------------------- 1. slots


async def open_hostile(url: str, port: int, count: int) -> list[Any]:
    held: list[Any] = []

    async def one(index: int) -> None:
        try:
            if index % 3 == 2:
                held.append(await asyncio.open_connection("127.0.0.1", port))
                return
            ws = await websockets.connect(url, open_timeout=20, ping_interval=None)
            held.append(ws)
            if index % 3 == 1:
                ws.transport.write(b"\x82")  # a frame header begun, never finished
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
            pass
        except RuntimeError:  # refused and closed by the server before the write
            pass

    for batch in range(0, count, 100):
        await asyncio.gather(*(one(i) for i in range(batch, min(count, batch + 100))))
    return held


def close_hostile(held: list[Any]) -> None:
    for item in held:
        if isinstance(item, tuple):
            item[1].transport.abort()
        else:
            item.transport.abort()


@dataclass
class SlotResult:
    hostile_opened: int = 0
    connections_held_by_hostile: int = 0
    honest_ok: int = 0
    honest_runs: int = 0
    honest_failures: list[str] = field(default_factory=list)
    honest_p50_ms: float = 0.0
    honest_p95_ms: float = 0.0


async def bench_slots(server: Server, args: argparse.Namespace) -> SlotResult:
    result = SlotResult(honest_runs=args.honest_runs)
    held = await open_hostile(server.url, server.port, args.hostile)
    result.hostile_opened = len(held)
    await asyncio.sleep(1.0)
    body = await asyncio.to_thread(health, server.port)
    result.connections_held_by_hostile = int(body.get("connections", -1))
    times = []
    for _ in range(args.honest_runs):
        ok, took, what = await article_client(server.url, timeout=10.0)
        if ok:
            result.honest_ok += 1
            times.append(took * 1000)
        else:
            result.honest_failures.append(what)
    result.honest_p50_ms = percentile(times, 0.5)
    result.honest_p95_ms = percentile(times, 0.95)
    close_hostile(held)
    return result


# ---------------------------------------------------------------- 2. fairness, memory


async def abuser(url: str, utterances: int, seconds: int) -> int:
    """Stop ``utterances`` long utterances at once; wait for their outcomes."""
    got = 0
    async with websockets.connect(url, open_timeout=30, max_size=None) as ws:
        for index in range(utterances):
            await ws.send(json.dumps({"event": "start", "id": f"a{index}"}))
            for _ in range(seconds):
                await ws.send(PCM_SECOND[:FRAME])
            await ws.send(json.dumps({"event": "stop"}))
        while got < utterances:
            message = await next_of(ws, {"final", "error"}, 600)
            if message["type"] == "final" or message.get("code") != "server_busy":
                got += 1
    return got


async def honest_dictation(url: str, stop: asyncio.Event, queue_ms: list[float]) -> list[float]:
    """Stop-to-final latencies seen by the client; the server's own stop-to-dispatch
    times (``timings.queue_ms``) go into ``queue_ms``."""
    latencies: list[float] = []
    async with websockets.connect(url, open_timeout=30, max_size=None) as ws:
        while not stop.is_set():
            await ws.send(json.dumps({"event": "start"}))
            await ws.send(PCM_SECOND)
            await ws.send(json.dumps({"event": "stop"}))
            stopped = time.monotonic()
            message = await next_of(ws, {"final", "error"}, 600)
            if message["type"] == "final":
                latencies.append((time.monotonic() - stopped) * 1000)
                queue_ms.append(float(message["timings"]["queue_ms"]))
            await asyncio.sleep(0.2)
    return latencies


@dataclass
class LoadResult:
    rss_idle_mib: float = 0.0
    rounds: list[dict[str, float]] = field(default_factory=list)
    honest_finals: int = 0
    honest_p50_ms: float = 0.0
    honest_p95_ms: float = 0.0
    honest_max_ms: float = 0.0
    honest_queue_p50_ms: float = 0.0
    honest_queue_p95_ms: float = 0.0


async def bench_load(server: Server, args: argparse.Namespace) -> LoadResult:
    result = LoadResult(rss_idle_mib=rss_mib(server.proc.pid))
    all_latencies: list[float] = []
    queue_ms: list[float] = []
    for _ in range(args.rounds):
        peak = 0.0
        stop = asyncio.Event()
        honest = asyncio.create_task(honest_dictation(server.url, stop, queue_ms))
        abusers = asyncio.gather(
            *(abuser(server.url, args.utterances, args.seconds) for _ in range(args.abusers))
        )
        while not abusers.done():
            peak = max(peak, rss_mib(server.proc.pid))
            await asyncio.sleep(0.1)
        await abusers
        stop.set()
        all_latencies += await honest
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = await asyncio.to_thread(health, server.port)
            if body.get("connections") == 0 and body.get("sessions") == 0:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.settle)
        after = rss_mib(server.proc.pid)
        result.rounds.append(
            {
                "peak_mib": round(peak, 1),
                "per_abusive_connection_mib": round((peak - result.rss_idle_mib) / args.abusers, 2),
                "after_mib": round(after, 1),
            }
        )
    result.honest_finals = len(all_latencies)
    result.honest_p50_ms = percentile(all_latencies, 0.5)
    result.honest_p95_ms = percentile(all_latencies, 0.95)
    result.honest_max_ms = max(all_latencies, default=float("nan"))
    result.honest_queue_p50_ms = percentile(queue_ms, 0.5)
    result.honest_queue_p95_ms = percentile(queue_ms, 0.95)
    return result


# ---------------------------------------------------------------- main


def raise_open_files() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def markdown(label: str, slots: SlotResult | None, load: LoadResult | None) -> str:
    lines = [f"**{label}**", ""]
    if slots is not None:
        lines += [
            f"- slots: {slots.hostile_opened} hostile sockets open, "
            f"{slots.connections_held_by_hostile} connections held by them; honest article "
            f"client: {slots.honest_ok}/{slots.honest_runs} finals, connect→final p50 "
            f"{slots.honest_p50_ms:.0f} ms, p95 {slots.honest_p95_ms:.0f} ms"
            + (
                f"; failures: {sorted(set(slots.honest_failures))}" if slots.honest_failures else ""
            ),
        ]
    if load is not None:
        rounds = "; ".join(
            f"round {i + 1}: peak {r['peak_mib']:.0f} MiB "
            f"({r['per_abusive_connection_mib']:.1f} MiB per connection), "
            f"after {r['after_mib']:.0f} MiB"
            for i, r in enumerate(load.rounds)
        )
        lines += [
            f"- load: idle RSS {load.rss_idle_mib:.0f} MiB; {rounds}",
            f"- honest final (stop→final) with the abusers: p50 {load.honest_p50_ms:.0f} ms, "
            f"p95 {load.honest_p95_ms:.0f} ms, max {load.honest_max_ms:.0f} ms "
            f"({load.honest_finals} finals); in the server's queue (stop→decoding): p50 "
            f"{load.honest_queue_p50_ms:.0f} ms, p95 {load.honest_queue_p95_ms:.0f} ms",
        ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.root).resolve()
    out: dict[str, Any] = {"root": str(root), "machine": machine_description()}
    slots = load = None
    if args.hostile > 0:
        server = start_server(root, args)
        try:
            slots = await bench_slots(server, args)
        finally:
            stop_server(server)
        out["slots"] = asdict(slots)
    if args.abusers > 0:
        server = start_server(root, args)
        try:
            load = await bench_load(server, args)
        finally:
            stop_server(server)
        out["load"] = asdict(load)
    out["markdown"] = markdown(args.label or str(root), slots, load)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT), help="checkout whose server to run")
    parser.add_argument("--label", default="", help="name of this run in the output")
    parser.add_argument("--hostile", type=int, default=2000)
    parser.add_argument("--honest-runs", type=int, default=20)
    parser.add_argument("--abusers", type=int, default=48)
    parser.add_argument("--utterances", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before 'after'")
    parser.add_argument("--per-batch-ms", type=float, default=50.0)
    parser.add_argument("--per-request-ms", type=float, default=50.0)
    parser.add_argument("--server-log", default="", help="append the server's stderr here")
    parser.add_argument("--server-log-level", default="WARNING")
    parser.add_argument("--json", default="", help="write the results here")
    args = parser.parse_args()
    limit = raise_open_files()
    if args.hostile + 100 > limit:
        print(f"open-files limit {limit}: using {limit - 100} hostile sockets", file=sys.stderr)
        args.hostile = max(0, limit - 100)
    out = asyncio.run(run(args))
    print(out["markdown"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
