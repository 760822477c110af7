"""Benchmark: the desktop pipeline end to end, and the client's CPU while listening.

Latency: every speech recording (tests/data/speech) is played in real time through a
paced array source → Silero VAD → segmenter → DictationClient → WebSocket → in-process
server, with room noise around each sentence. Per utterance, from the latency timeline
(desktop/audio/timeline.py) and the server's ``final.timings``:

- VAD decision: audio time from the end of speech to the end decision (min silence and
  tail; ``vad_decision_s``), plus end decision → ``stop`` written (``end_to_stop``);
- server queue: stop received → final decoding started (``timings.queue_ms``);
- engine: final decoding time (``timings.engine_ms``);
- transport and the rest: stop sent → final received minus the server's own
  stop → final (``timings.total_ms``);
- end → final: end decision → final received (what the user waits after the VAD);
  perceived = VAD decision + end → final.

Two engines side by side: the fake engine with a fixed cost per call (full-decode
policy), and faster-whisper tiny.en on CPU (the test-only engine of tests/e2e; skipped
when it is not installed).

CPU: the pipeline listens in real time for ``--listen-s`` seconds to room noise, then to
speech, connected to a fake server in a child process (so the process measured is the
client alone): Silero's cost per 32 ms chunk (on onnxruntime, as the app runs it) and
the whole process's CPU (``time.process_time`` delta / wall).

    python tests/bench/bench_pipeline.py [--listen-s 10] [--fake-ms 150] [--no-whisper]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from desktop.audio.pipeline import AudioPipeline  # noqa: E402
from desktop.audio.segmenter import Event, Segmenter, UtteranceStarted  # noqa: E402
from desktop.audio.source import ArraySource  # noqa: E402
from desktop.audio.vad import SileroOnnxVad  # noqa: E402
from desktop.streaming import (  # noqa: E402
    ClientEvent,
    ClientState,
    DictationClient,
    FinalText,
    StateChanged,
    UtteranceFailed,
)
from server.app import RunningServer, start_server  # noqa: E402
from server.config import parse_config  # noqa: E402
from server.engine.base import Engine  # noqa: E402
from server.engine.fake import FakeGenerator  # noqa: E402
from server.engine.full_decode import FullDecodeEngine  # noqa: E402
from tests.bench.report import machine_description, write_section  # noqa: E402
from tests.conftest import load_recordings, spawn_fake_server  # noqa: E402

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def room_noise(seconds: float, seed: int, level: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, level, int(seconds * SAMPLE_RATE))).astype(np.int16)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class Run:
    """Source → Silero → segmenter → DictationClient, as desktop.live composes them."""

    def __init__(self, samples: np.ndarray, url: str) -> None:
        self.events: list[ClientEvent] = []
        self.started = 0
        self._lock = threading.Lock()
        self.client = DictationClient(url, self._on_client_event)
        self.pipeline = AudioPipeline(
            ArraySource(samples, realtime=True), Segmenter(), SileroOnnxVad(), self._on_segment
        )

    def _on_segment(self, event: Event) -> None:
        if isinstance(event, UtteranceStarted):
            with self._lock:
                self.started += 1
        self.client.submit(event)

    def _on_client_event(self, event: ClientEvent) -> None:
        with self._lock:
            self.events.append(event)

    def ready(self) -> bool:
        with self._lock:
            return any(
                isinstance(e, StateChanged) and e.state is ClientState.READY for e in self.events
            )

    def done(self) -> int:
        with self._lock:
            return sum(isinstance(e, (FinalText, UtteranceFailed)) for e in self.events)

    def play(self, timeout: float) -> None:
        self.client.start()
        wait(self.ready, 30, "client not ready")
        self.pipeline.start()
        self.pipeline.wait(timeout)
        wait(lambda: self.done() >= self.started, 60, "finals missing")

    def close(self) -> None:
        self.pipeline.stop()
        self.client.close()


def wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(what)
        time.sleep(0.02)


class ServerThread:
    """An in-process server on its own event loop thread."""

    def __init__(self, engine: Engine) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        argv = ["--engine", "fake", "--port", "0", "--log-level", "WARNING"]
        config = parse_config(argv, env={})
        self.server: RunningServer = self._call(start_server(config, engine))
        self._call(self.server.wait_loaded())

    def _call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(600)

    def close(self) -> None:
        self._call(self.server.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class LatencyRow:
    name: str
    vad_decision_ms: list[float] = field(default_factory=list)
    end_to_stop_ms: list[float] = field(default_factory=list)
    queue_ms: list[float] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)
    transport_ms: list[float] = field(default_factory=list)
    end_to_final_ms: list[float] = field(default_factory=list)
    perceived_ms: list[float] = field(default_factory=list)
    utterances: int = 0
    expected: int = 0
    failed: int = 0
    texts: list[str] = field(default_factory=list)


def bench_latency(name: str, engine: Engine) -> LatencyRow:
    recordings = load_recordings()
    parts = [room_noise(1.0, seed=1)]
    for k, rec in enumerate(recordings):
        pcm = np.frombuffer(rec.pcm(), dtype="<i2")
        parts += [pcm, room_noise(1.5, seed=2 + k)]
    samples = np.concatenate(parts)
    row = LatencyRow(name, expected=len(recordings))
    server = ServerThread(engine)
    run = Run(samples, server.server.url)
    try:
        run.play(timeout=len(samples) / SAMPLE_RATE + 30)
    finally:
        run.close()
        server.close()
    for event in run.events:
        if isinstance(event, UtteranceFailed):
            row.failed += 1
        if not isinstance(event, FinalText):
            continue
        t = event.timeline
        timings = event.timings  # the server's final.timings
        stop_to_final, end_to_final = t.stop_to_final(), t.end_to_final()
        end_to_stop, perceived = t.end_to_stop(), t.perceived_latency()
        if (
            timings is None
            or stop_to_final is None
            or end_to_final is None
            or end_to_stop is None
            or perceived is None
            or t.vad_decision_s is None
        ):
            continue
        row.utterances += 1
        row.texts.append(event.text)
        row.vad_decision_ms.append(1000 * t.vad_decision_s)
        row.end_to_stop_ms.append(1000 * end_to_stop)
        row.queue_ms.append(timings.queue_ms)
        row.engine_ms.append(timings.engine_ms)
        row.transport_ms.append(1000 * stop_to_final - timings.total_ms)
        row.end_to_final_ms.append(1000 * end_to_final)
        row.perceived_ms.append(1000 * perceived)
    log.info("%s: %d/%d utterances", name, row.utterances, row.expected)
    return row


@dataclass
class CpuRow:
    name: str
    vad_ms_per_chunk: float
    vad_max_ms: float
    cpu_percent: float
    wall_s: float


def bench_cpu(name: str, samples: np.ndarray, url: str) -> CpuRow:
    run = Run(samples, url)
    run.client.start()
    try:
        wait(run.ready, 30, "client not ready")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        run.pipeline.start()
        run.pipeline.wait(len(samples) / SAMPLE_RATE + 30)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stats = run.pipeline.stats
    finally:
        run.close()
    return CpuRow(
        name, stats.vad_ms_per_chunk, 1000 * stats.max_vad_seconds, 100 * cpu / wall, wall
    )


def speech_for(seconds: float) -> np.ndarray:
    parts, total = [], 0
    for k, rec in enumerate(load_recordings()):
        pcm = np.frombuffer(rec.pcm(), dtype="<i2")
        parts += [pcm, room_noise(0.8, seed=50 + k)]
        total += len(pcm) + int(0.8 * SAMPLE_RATE)
        if total >= seconds * SAMPLE_RATE:
            break
    return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]


def fmt(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.0f} / {pct(values, 95):.0f}"


def render(rows: list[LatencyRow], cpu_rows: list[CpuRow], fake_ms: float) -> str:
    lines = [
        f"Machine: {machine_description()}. Client and server on one machine (loopback); "
        "speech played in real time (1.5 s of room noise after each sentence), default "
        "segmenter (480 ms pre-roll, 560 ms min silence, 256 ms tail), server partial "
        "steps on. Values are p50 / p95 in ms over the utterances of the run.",
        "",
        "### End of speech → final received",
        "",
        "| engine | utterances | VAD decision (audio) | end → stop sent | server queue "
        "| engine | transport + rest | end → final | perceived (VAD + end → final) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r.utterances:
            lines.append(f"| {r.name} | 0/{r.expected} | | | | | | | |")
            continue
        lines.append(
            f"| {r.name} | {r.utterances}/{r.expected} | {fmt(r.vad_decision_ms)} "
            f"| {fmt(r.end_to_stop_ms)} | {fmt(r.queue_ms)} | {fmt(r.engine_ms)} "
            f"| {fmt(r.transport_ms)} | {fmt(r.end_to_final_ms)} | {fmt(r.perceived_ms)} |"
        )
    lines += [
        "",
        "VAD decision is audio time (min silence + tail after the last speech chunk), not "
        "processing time; end → stop is the client's own overhead. Transport + rest is "
        "stop sent → final received minus the server's stop → final (`timings.total_ms`). "
        f"Fake engine: {fake_ms:.0f} ms per model call, full-decode policy. Whisper: "
        "faster-whisper tiny.en (int8, CPU, 2 threads, beam 1), the test-only engine of "
        "tests/e2e, full-decode policy (every partial step decodes the whole utterance).",
        "",
        "### Client CPU while listening (real time)",
        "",
        "| input | wall s | Silero (ONNX) ms per 32 ms chunk (mean) | Silero max ms "
        "| whole-process CPU % |",
        "|---|---|---|---|---|",
    ]
    for c in cpu_rows:
        lines.append(
            f"| {c.name} | {c.wall_s:.1f} | {c.vad_ms_per_chunk:.2f} | {c.vad_max_ms:.1f} "
            f"| {c.cpu_percent:.1f} |"
        )
    lines += [
        "",
        "Whole-process CPU is `time.process_time()` delta / wall time of the client process "
        "(audio thread with Silero, client thread with the WebSocket); the fake server runs "
        "in a child process. 100 % = one core.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen-s", type=float, default=10.0)
    parser.add_argument("--fake-ms", type=float, default=150.0)
    parser.add_argument("--no-whisper", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)

    rows = [
        bench_latency(
            f"fake, {args.fake_ms:.0f} ms",
            FullDecodeEngine(FakeGenerator(per_batch_ms=args.fake_ms, max_batch_size=1)),
        )
    ]
    if not args.no_whisper:
        try:
            from tests.e2e.whisper_engine import WhisperGenerator, whisper_engine
        except ImportError as exc:
            log.warning("whisper row skipped: %s", exc)
        else:
            rows.append(bench_latency("faster-whisper tiny.en", whisper_engine(WhisperGenerator())))

    proc, port = spawn_fake_server()
    try:
        url = f"ws://127.0.0.1:{port}"
        cpu_rows = [
            bench_cpu("room noise (no utterance)", room_noise(args.listen_s, seed=99), url),
            bench_cpu("real speech", speech_for(args.listen_s), url),
        ]
    finally:
        proc.terminate()
        proc.wait(10)

    body = render(rows, cpu_rows, args.fake_ms)
    print(body)
    if not args.no_write:
        command = "python tests/bench/bench_pipeline.py"
        if args.listen_s != 10.0 or args.fake_ms != 150.0 or args.no_whisper:
            command = " ".join(["python", *sys.argv])
        write_section("Desktop pipeline: end of speech to final, client CPU", command, body)


if __name__ == "__main__":
    main()
