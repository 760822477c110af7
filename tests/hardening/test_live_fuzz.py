"""Fuzzing the running server: hostile frames on one socket, real dictation on others.

A fake-engine server runs as a child process. One fuzz client sends a scripted tour
(every frame-level error and close code once), then random steps from a seeded RNG
(tests/hardening/fuzz.py); after each step it sends a probe and checks that the
answers in between are exactly the ones docs/protocol.md prescribes, and every final
is exactly the fake transcript of the bytes the server accepted. Meanwhile two
bystander clients dictate real recordings in real time; their finals must be exactly
those of an undisturbed run, with no error. The server must stay up, hold nothing
afterwards, and log no unhandled exception.

``TINGXIE_FUZZ_SCALE=N`` runs N times as many bystander utterances (and so N times
as long) and requires N times as many fuzz frames; ``TINGXIE_FUZZ_SEED`` picks the seed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from protocol.limits import Limits
from protocol.messages import ErrorCode
from tests.conftest import Recording, spawn_fake_server
from tests.hardening.conftest import FUZZ_SCALE, tried
from tests.hardening.fuzz import Frame, FrameMaker, Reply, ServerModel, Step, tour
from tests.hardening.soak import wait_idle
from tests.server.helpers import fake_final, send_pcm

REQUEST_TIMEOUT_S = 4.0
LIMITS = Limits(max_utterance_seconds=8.0)
SEED = int(os.environ.get("TINGXIE_FUZZ_SEED", "20261123"))
#: Fuzz frames the default run sends at least (while the bystanders talk, a quiet 2-core
#: machine sends over 10 times as many; a busy one keeps fuzzing until it has sent these).
MIN_FRAMES = 5000 * FUZZ_SCALE
MIN_FINALS = 10
#: What a server log may never show: an exception nobody handled.
UNHANDLED = ("connection handler failed", "never retrieved", "Exception in callback")


@pytest.fixture
def fuzz_server(subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Any, int, Path]]:
    log = tmp_path / "server.log"
    proc, port = spawn_fake_server(
        "--max-utterance-seconds", str(LIMITS.max_utterance_seconds),
        "--max-batch-size", "1",  # one request per model call, as vLLM takes them...
        "--fake-concurrent-batches", "8",  # ...many at once: a hung one blocks no other
        "--fake-per-batch-ms", "5",
        "--fake-faults",
        "--request-timeout", str(REQUEST_TIMEOUT_S),
        env=subprocess_env,
        log=log,
    )  # fmt: skip
    yield proc, port, log
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


@dataclass
class FuzzTally:
    steps: int = 0
    frames: int = 0
    by_label: collections.Counter[str] = field(default_factory=collections.Counter)
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    closes: collections.Counter[int] = field(default_factory=collections.Counter)
    finals: int = 0
    partials: int = 0
    engine_errors: int = 0


class FuzzClient:
    """One fuzzing socket at a time, checked against a :class:`ServerModel`."""

    def __init__(self, url: str, model: ServerModel, tally: FuzzTally) -> None:
        self.url = url
        self.model = model
        self.tally = tally
        self.ws: ClientConnection | None = None
        self.inbox: asyncio.Queue[dict[str, Any] | int] = asyncio.Queue()
        self.replies: list[Reply] = []
        self.probes = 0
        self.reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.url, max_size=None, compression=None)
        self.model.reset()
        self.inbox = asyncio.Queue()
        self.reader = asyncio.create_task(self._read(self.ws, self.inbox))

    async def close(self) -> None:
        self._count_answers()
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader

    def _count_answers(self) -> None:
        self.tally.finals += self.model.finals_checked
        self.tally.engine_errors += self.model.engine_errors_checked
        self.tally.partials += self.model.partials_checked
        self.model.finals_checked = self.model.engine_errors_checked = 0
        self.model.partials_checked = 0

    @staticmethod
    async def _read(ws: ClientConnection, inbox: asyncio.Queue[dict[str, Any] | int]) -> None:
        try:
            async for raw in ws:
                assert isinstance(raw, str), "the server sent a binary frame"
                inbox.put_nowait(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        inbox.put_nowait(ws.close_code if ws.close_code is not None else -1)

    async def _next(self, timeout: float = 15.0) -> dict[str, Any] | int:
        """The next message, after routing finals and partials to the model."""
        item = await asyncio.wait_for(self.inbox.get(), timeout)
        if isinstance(item, int):
            return item
        kind, now = item.get("type"), time.monotonic()
        if kind == "partial":
            self.model.on_partial(item["id"], item["text"], item["audio_ms"])
        elif kind == "final":
            self.model.on_final(item["id"], item["text"])
        elif kind == "error" and item["code"] == ErrorCode.ENGINE_ERROR.value:
            self.model.on_engine_error(item["id"], now)
        elif kind in ("error", "ready", "started"):
            reply = Reply(kind, item.get("code", ""), item.get("id", ""), item.get("fatal", False))
            self.replies.append(reply)
            self.tally.codes[reply.code or reply.type] += 1
        else:
            raise AssertionError(f"unexpected message {item}")
        return item

    async def _drain_until_certain(self, frame: Frame) -> None:
        while self.model.start_is_uncertain(frame, time.monotonic()):
            item = await self._next()
            assert not isinstance(item, int), f"connection closed ({item}) while draining"

    async def run(self, step: Step) -> None:
        assert self.ws is not None
        expected: list[Reply] = []
        close_code = None
        for frame in step.frames:
            await self._drain_until_certain(frame)
            outcome = self.model.on_frame(frame, time.monotonic())
            expected += outcome.replies
            if frame.kind == "binary":
                await self.ws.send(frame.data)
            elif frame.kind == "raw_text":
                await self.ws.send(frame.data, text=True)
            else:
                await self.ws.send(frame.text)
            self.tally.frames += 1
            if outcome.close_code is not None:
                close_code = outcome.close_code
                break
        self.tally.steps += 1
        self.tally.by_label[step.label] += 1
        tried("live server fuzz: frames", len(step.frames))
        if close_code is not None:
            await self._expect_close(step, expected, close_code)
            return
        self.probes += 1
        probe = f"probe-{self.probes}"
        await self.ws.send(json.dumps({"event": probe}))
        while True:
            item = await self._next()
            assert not isinstance(item, int), f"{step.label}: connection closed ({item})"
            if item.get("type") == "error" and f'"{probe}"' in item.get("message", ""):
                self.replies.pop()  # the probe's own bad_message
                self.tally.codes[ErrorCode.BAD_MESSAGE.value] -= 1
                break
        self._compare(step, expected)

    async def _expect_close(self, step: Step, expected: list[Reply], code: int) -> None:
        while True:
            item = await self._next()
            if isinstance(item, int):
                break
        assert item == code, f"{step.label}: closed with {item}, expected {code}"
        self.tally.closes[code] += 1
        self._compare(step, expected)
        await self.close()
        await self.connect()

    def _compare(self, step: Step, expected: list[Reply]) -> None:
        got, self.replies = self.replies, []
        if got != expected:
            frames = "\n  ".join(f.summary() for f in step.frames[:20])
            raise AssertionError(
                f"step {step.label!r}: answers differ\n  expected {expected}\n  got      {got}"
                f"\n  frames:\n  {frames}"
            )


async def fuzz(url: str, speech: bytes, done: asyncio.Event, deadline: float) -> FuzzTally:
    tally = FuzzTally()
    client = FuzzClient(url, ServerModel(LIMITS, REQUEST_TIMEOUT_S), tally)
    await client.connect()
    for step in tour(speech, LIMITS):
        await client.run(step)
    maker = FrameMaker(SEED, speech, LIMITS)

    def enough() -> bool:  # of everything checked; a loaded machine runs fewer steps
        return tally.frames >= MIN_FRAMES and tally.finals > MIN_FINALS

    while not (done.is_set() and enough()) and time.monotonic() < deadline:
        await client.run(maker.step())
    # Everything still decoding gets its answer before the socket closes.
    while client.model.decoding:
        item = await client._next()
        assert not isinstance(item, int)
    await client.close()
    return tally


async def bystander(url: str, name: str, recordings: list[Recording]) -> list[tuple[str, str]]:
    """Dictate ``recordings`` in real time; (expected, got) per utterance. No error allowed."""
    results = []
    async with websockets.connect(url) as ws:
        for n, recording in enumerate(recordings):
            utterance_id = f"{name}-{n}"
            await ws.send(json.dumps({"event": "start", "id": utterance_id}))
            await send_pcm(ws, recording.pcm(), realtime=True)
            await ws.send(json.dumps({"event": "stop", "id": utterance_id}))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert message["type"] != "error", f"bystander {name} got {message}"
                if message["type"] == "final":
                    assert message["id"] == utterance_id
                    results.append((fake_final(recording), message["text"]))
                    break
            await asyncio.sleep(0.2)
    return results


async def test_fuzzed_server_answers_every_breach_and_bystanders_are_untouched(
    fuzz_server: tuple[Any, int, Path], recordings: list[Recording]
) -> None:
    proc, port, log = fuzz_server
    url = f"ws://127.0.0.1:{port}"
    by_id = {r.id: r for r in recordings}
    speech = by_id["ps_0870"].pcm()
    first = [by_id["ps_cards_002"], by_id["ps_0880"]] * FUZZ_SCALE
    second = [by_id["ps_cards_005"], by_id["ps_cards_001"]] * FUZZ_SCALE
    done = asyncio.Event()

    async def bystanders() -> list[list[tuple[str, str]]]:
        try:
            return list(
                await asyncio.gather(bystander(url, "b1", first), bystander(url, "b2", second))
            )
        finally:
            done.set()

    deadline = time.monotonic() + 60 * FUZZ_SCALE
    finals, tally = await asyncio.gather(bystanders(), fuzz(url, speech, done, deadline))

    print(
        f"\nlive fuzz (seed {SEED}): {tally.frames} frames in {tally.steps} steps, "
        f"{sum(tally.closes.values())} connections closed by the server; "
        f"{tally.finals} finals, {tally.partials} partials and {tally.engine_errors} engine "
        "errors of fuzzed utterances checked"
        f"\n  steps: {dict(tally.by_label.most_common())}"
        f"\n  answers: {dict(tally.codes.most_common())}, closes: {dict(tally.closes)}"
    )
    for expected, got in (pair for run in finals for pair in run):
        assert got == expected
    assert len([pair for run in finals for pair in run]) == 4 * FUZZ_SCALE
    assert tally.frames >= MIN_FRAMES, "the fuzzer sent too few frames to mean much"
    every_answer = {code.value for code in ErrorCode} - {
        ErrorCode.ENGINE_ERROR.value,  # asynchronous: counted as engine_errors
        ErrorCode.NOT_READY.value,  # the model is loaded before any client comes
        ErrorCode.SERVER_BUSY.value,  # connection limit: tests/server/test_operations.py
        ErrorCode.SHUTTING_DOWN.value,  # signals: tests/server/test_entry_points.py
        ErrorCode.UNSUPPORTED_LANGUAGE.value,  # the fake engine takes any language
        ErrorCode.INTERNAL.value,  # a server bug: must never be seen
    }
    assert every_answer | {"ready"} <= set(tally.codes), set(tally.codes)
    assert set(tally.closes) == {1002, 1007, 1009}
    assert tally.finals > MIN_FINALS and tally.engine_errors >= 1
    # The server is up, holds nothing, and never lost control of an exception.
    assert proc.poll() is None
    idle = await wait_idle(proc.pid, port, time.monotonic())
    assert (idle.connections, idle.sessions, idle.queue_depth) == (0, 0, 0)
    text = log.read_text(errors="replace")
    assert not [line for line in text.splitlines() if any(u in line for u in UNHANDLED)], text
