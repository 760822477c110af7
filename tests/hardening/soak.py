"""Soak driver: many clients dictating real speech in real time against a server process,
while the server's memory, file descriptors, threads and sessions are sampled.

Used by tests/hardening/test_soak_short.py (seconds, in the default run) and by
tests/bench/bench_soak.py (minutes, figures for docs/benchmarks.md). Each client
reconnects every few utterances and cancels one utterance in ``cancel_every`` halfway,
so connection set-up, teardown and the cancel path are exercised as well as finals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from desktop.client import ServerLink
from protocol.audio import BYTES_PER_SECOND
from protocol.messages import Error, Final, ServerMessage
from server.engine.fake import text_for_audio
from tests.conftest import Recording

log = logging.getLogger(__name__)

FRAME_BYTES = 3200  # 100 ms, as the desktop client sends


@dataclass(frozen=True)
class ProcessSample:
    """One look at the server: its process (from /proc) and its own /healthz counters."""

    t: float  # seconds since the soak began
    rss_kib: int
    fds: int
    threads: int
    connections: int
    sessions: int
    queue_depth: int
    in_flight: int
    tasks: int  # the server's asyncio tasks


@dataclass(frozen=True)
class FinalRecord:
    t: float  # when the final arrived, seconds since the soak began
    latency_ms: float  # final received − stop sent
    exact: bool  # text equals the fake engine's transcript of the whole recording


@dataclass
class ClientTally:
    finals: list[FinalRecord] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # "recording id: got ..." per wrong final
    errors: list[str] = field(default_factory=list)  # error messages the server sent
    cancelled: int = 0
    connections: int = 0
    audio_s: float = 0.0


@dataclass
class SoakReport:
    clients: int
    duration_s: float
    baseline: ProcessSample  # idle, before any client connected
    settled: ProcessSample  # idle again, after every client left
    samples: list[ProcessSample]
    tallies: list[ClientTally]

    @property
    def finals(self) -> list[FinalRecord]:
        return [f for t in self.tallies for f in t.finals]

    @property
    def wrong(self) -> list[str]:
        return [w for t in self.tallies for w in t.wrong]

    @property
    def errors(self) -> list[str]:
        return [e for t in self.tallies for e in t.errors]


# ---------------------------------------------------------------- the server's vital signs


def read_process(pid: int) -> tuple[int, int, int]:
    """(resident memory in KiB, open file descriptors, threads) of a Linux process."""
    rss_kib = threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kib, len(os.listdir(f"/proc/{pid}/fd")), threads


def read_health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        body: dict[str, Any] = json.load(response)
        return body


def take_sample(pid: int, port: int, t: float) -> ProcessSample:
    rss_kib, fds, threads = read_process(pid)
    health = read_health(port)
    return ProcessSample(
        t=t,
        rss_kib=rss_kib,
        fds=fds,
        threads=threads,
        connections=int(health["connections"]),
        sessions=int(health["sessions"]),
        queue_depth=int(health["queue_depth"]),
        in_flight=int(health["in_flight"]),
        tasks=int(health["tasks"]),
    )


async def wait_idle(pid: int, port: int, t0: float, timeout_s: float = 10.0) -> ProcessSample:
    """Sample until the server holds no connection, session or request (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        sample = await asyncio.to_thread(take_sample, pid, port, time.monotonic() - t0)
        idle = (
            sample.connections == 0
            and sample.sessions == 0
            and sample.queue_depth == 0
            and sample.in_flight == 0
        )
        if idle or time.monotonic() > deadline:
            return sample
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------- clients


class _Connection:
    """One client connection: sends utterances, routes finals back by utterance id."""

    def __init__(self, link: ServerLink, tally: ClientTally) -> None:
        self.link = link
        self.tally = tally
        self.waiting: dict[str, asyncio.Future[Final]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.link.messages():
            self._route(message)
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("connection closed before the final"))

    def _route(self, message: ServerMessage) -> None:
        if isinstance(message, Final):
            future = self.waiting.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message)
            else:
                self.tally.errors.append(f"final for an utterance not waited for: {message.id}")
        elif isinstance(message, Error):
            self.tally.errors.append(f"{message.code.value}: {message.message}")
            future = self.waiting.pop(message.id, None)
            if future is not None and not future.done():
                future.set_exception(RuntimeError(message.message))


async def _stream(link: ServerLink, pcm: bytes, until_byte: int | None = None) -> None:
    """Send ``pcm`` (up to ``until_byte``) in real time, 100 ms frames."""
    loop = asyncio.get_running_loop()
    end = len(pcm) if until_byte is None else until_byte
    began = loop.time()
    for offset in range(0, end, FRAME_BYTES):
        await asyncio.sleep(max(0.0, began + offset / BYTES_PER_SECOND - loop.time()))
        await link.send_audio(pcm[offset : min(end, offset + FRAME_BYTES)])


async def soak_client(
    url: str,
    index: int,
    recordings: list[Recording],
    t0: float,
    stop_at: float,
    *,
    utterances_per_connection: int = 6,
    cancel_every: int = 10,
    seed: int = 0,
) -> ClientTally:
    """Dictate recordings in a loop until ``stop_at`` (monotonic); count what came back."""
    rng = random.Random(seed * 1000 + index)
    tally = ClientTally()
    expected = {r.id: text_for_audio(r.samples()) for r in recordings}
    pcms = {r.id: r.pcm() for r in recordings}
    await asyncio.sleep(rng.uniform(0.0, 1.0))  # clients do not start on the same tick
    number = 0
    out_of_time = False
    while not out_of_time:
        async with await ServerLink.open(url) as link:
            tally.connections += 1
            connection = _Connection(link, tally)
            for _ in range(utterances_per_connection):
                recording = recordings[(index + number + 1) % len(recordings)]
                pcm = pcms[recording.id]
                if time.monotonic() + len(pcm) / BYTES_PER_SECOND >= stop_at:
                    out_of_time = True  # it could not be said before the end
                    break
                number += 1
                utterance_id = f"c{index}-{number}"
                await link.start(utterance_id)
                if number % cancel_every == 0:
                    await _stream(link, pcm, until_byte=len(pcm) // 2)
                    await link.cancel(utterance_id)
                    tally.cancelled += 1
                    continue
                future: asyncio.Future[Final] = asyncio.get_running_loop().create_future()
                connection.waiting[utterance_id] = future
                await _stream(link, pcm)
                await link.stop(utterance_id)
                stop_sent = time.monotonic()
                final = await asyncio.wait_for(future, 30.0)
                received = time.monotonic()
                exact = final.text == expected[recording.id]
                if not exact:
                    tally.wrong.append(f"{recording.id}: got {final.text!r}")
                tally.finals.append(
                    FinalRecord(received - t0, (received - stop_sent) * 1000.0, exact)
                )
                tally.audio_s += len(pcm) / BYTES_PER_SECOND
                await asyncio.sleep(rng.uniform(0.2, 1.0))  # the user pauses between sentences
            connection.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connection.reader
    return tally


async def run_soak(
    url: str,
    pid: int,
    port: int,
    recordings: list[Recording],
    *,
    clients: int = 8,
    duration_s: float = 20.0,
    sample_every_s: float = 5.0,
    seed: int = 0,
    utterances_per_connection: int = 6,
    cancel_every: int = 10,
) -> SoakReport:
    """Run ``clients`` soak clients for ``duration_s`` and sample the server meanwhile."""
    t0 = time.monotonic()
    baseline = await wait_idle(pid, port, t0)
    stop_at = t0 + duration_s
    samples: list[ProcessSample] = []

    async def sampler() -> None:
        while True:
            await asyncio.sleep(sample_every_s)
            sample = await asyncio.to_thread(take_sample, pid, port, time.monotonic() - t0)
            samples.append(sample)
            log.info(
                "t=%.0f s rss=%.1f MiB fds=%d threads=%d connections=%d sessions=%d",
                sample.t,
                sample.rss_kib / 1024,
                sample.fds,
                sample.threads,
                sample.connections,
                sample.sessions,
            )

    sampling = asyncio.create_task(sampler())
    try:
        tallies = await asyncio.gather(
            *(
                soak_client(
                    url,
                    i,
                    recordings,
                    t0,
                    stop_at,
                    utterances_per_connection=utterances_per_connection,
                    cancel_every=cancel_every,
                    seed=seed,
                )
                for i in range(clients)
            )
        )
    finally:
        sampling.cancel()
    settled = await wait_idle(pid, port, t0)
    return SoakReport(
        clients=clients,
        duration_s=time.monotonic() - t0,
        baseline=baseline,
        settled=settled,
        samples=samples,
        tallies=list(tallies),
    )


# ---------------------------------------------------------------- summaries (pure)


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, in value per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return covariance / spread * 3600.0


def finals_by_minute(finals: list[FinalRecord]) -> dict[int, list[float]]:
    """Final latencies (ms) grouped by the minute of the run in which they arrived."""
    minutes: dict[int, list[float]] = {}
    for final in finals:
        minutes.setdefault(int(final.t // 60), []).append(final.latency_ms)
    return dict(sorted(minutes.items()))
