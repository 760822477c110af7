"""Scheduler rules, with a generator that records what it was given."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from server.engine.base import GenerationRequest, GenerationResult, Generator, Priority
from server.scheduler import Scheduler


class RecordingGenerator(Generator):
    name = "recording"

    def __init__(self, max_batch_size: int = 8, supports_abort: bool = False) -> None:
        self.max_batch_size = max_batch_size
        self.supports_abort = supports_abort
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.cancelled = 0

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.batches.append([r.context for r in batch])
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return [GenerationResult(text=r.context) for r in batch]


def request(tag: str, priority: Priority = Priority.PARTIAL) -> GenerationRequest:
    return GenerationRequest(audio=np.zeros(0, np.float32), context=tag, priority=priority)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_finals_run_before_partials_and_requests_are_batched() -> None:
    gen = RecordingGenerator(max_batch_size=3)
    scheduler = Scheduler(gen)
    scheduler.start()
    blocker = asyncio.create_task(scheduler.submit(lambda: request("blocker"), Priority.PARTIAL))
    await settle()  # the blocker occupies the only slot
    tasks = [
        asyncio.create_task(scheduler.submit(lambda t=t: request(t), p))
        for t, p in [
            ("p1", Priority.PARTIAL),
            ("p2", Priority.PARTIAL),
            ("f1", Priority.FINAL),
            ("p3", Priority.PARTIAL),
            ("f2", Priority.FINAL),
        ]
    ]
    await settle()
    assert scheduler.queue_depth == 5
    gen.gate.set()
    results = await asyncio.gather(blocker, *tasks)
    assert [r.text for r in results] == ["blocker", "p1", "p2", "f1", "p3", "f2"]
    assert gen.batches == [["blocker"], ["f1", "f2", "p1"], ["p2", "p3"]]
    await scheduler.close()


async def test_requests_are_built_at_dispatch_with_the_newest_state() -> None:
    gen = RecordingGenerator()
    scheduler = Scheduler(gen)
    scheduler.start()
    blocker = asyncio.create_task(scheduler.submit(lambda: request("blocker"), Priority.FINAL))
    await settle()
    audio_seen = {"value": "old audio"}
    queued = asyncio.create_task(
        scheduler.submit(lambda: request(audio_seen["value"]), Priority.PARTIAL)
    )
    await settle()
    audio_seen["value"] = "new audio"  # more audio arrives while the step waits
    gen.gate.set()
    assert (await queued).text == "new audio"
    await blocker
    await scheduler.close()


async def test_cancelled_queued_request_never_reaches_the_generator() -> None:
    gen = RecordingGenerator()
    scheduler = Scheduler(gen)
    scheduler.start()
    blocker = asyncio.create_task(scheduler.submit(lambda: request("blocker"), Priority.FINAL))
    await settle()
    doomed = asyncio.create_task(scheduler.submit(lambda: request("doomed"), Priority.PARTIAL))
    await settle()
    doomed.cancel()
    await settle()
    assert scheduler.queue_depth == 0
    gen.gate.set()
    await blocker
    await settle()
    assert gen.batches == [["blocker"]]
    assert scheduler.stats.dropped_before_dispatch == 1
    await scheduler.close()


async def test_abandoned_running_request_is_aborted_when_the_generator_can() -> None:
    gen = RecordingGenerator(max_batch_size=1, supports_abort=True)
    scheduler = Scheduler(gen)
    scheduler.start()
    running = asyncio.create_task(scheduler.submit(lambda: request("r"), Priority.PARTIAL))
    await settle()
    running.cancel()
    await settle()
    assert gen.cancelled == 1 and scheduler.stats.aborted == 1
    assert scheduler.in_flight == 0
    await scheduler.close()


async def test_a_failing_builder_fails_only_its_request() -> None:
    gen = RecordingGenerator()
    gen.gate.set()
    scheduler = Scheduler(gen)
    scheduler.start()

    def broken() -> GenerationRequest:
        raise ValueError("bad builder")

    bad = asyncio.create_task(scheduler.submit(broken, Priority.PARTIAL))
    good = asyncio.create_task(scheduler.submit(lambda: request("ok"), Priority.PARTIAL))
    results = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(results[0], ValueError) and results[1].text == "ok"  # type: ignore[union-attr]
    await scheduler.close()


async def test_partials_riding_with_finals_can_be_capped() -> None:
    gen = RecordingGenerator(max_batch_size=8)
    scheduler = Scheduler(gen, partials_with_final=1)
    scheduler.start()
    blocker = asyncio.create_task(scheduler.submit(lambda: request("blocker"), Priority.PARTIAL))
    await settle()
    tags = [
        ("p1", Priority.PARTIAL),
        ("f1", Priority.FINAL),
        ("p2", Priority.PARTIAL),
        ("p3", Priority.PARTIAL),
        ("f2", Priority.FINAL),
    ]
    tasks = [asyncio.create_task(scheduler.submit(lambda t=t: request(t), p)) for t, p in tags]
    await settle()
    gen.gate.set()
    await asyncio.gather(blocker, *tasks)
    # Both finals, then only one partial with them; the other partials next.
    assert gen.batches == [["blocker"], ["f1", "f2", "p1"], ["p2", "p3"]]
    await scheduler.close()


async def test_partials_with_final_zero_gives_finals_their_own_batch() -> None:
    gen = RecordingGenerator(max_batch_size=8)
    scheduler = Scheduler(gen, partials_with_final=0)
    scheduler.start()
    blocker = asyncio.create_task(scheduler.submit(lambda: request("blocker"), Priority.PARTIAL))
    await settle()
    tags = [("p1", Priority.PARTIAL), ("f1", Priority.FINAL), ("p2", Priority.PARTIAL)]
    tasks = [asyncio.create_task(scheduler.submit(lambda t=t: request(t), p)) for t, p in tags]
    await settle()
    gen.gate.set()
    await asyncio.gather(blocker, *tasks)
    assert gen.batches == [["blocker"], ["f1"], ["p1", "p2"]]
    await scheduler.close()


async def test_finals_take_turns_across_connections() -> None:
    """One connection's backlog of finals delays another's by at most one request."""
    gen = RecordingGenerator(max_batch_size=1)
    scheduler = Scheduler(gen)
    scheduler.start()
    blocker = asyncio.create_task(scheduler.submit(lambda: request("blocker"), Priority.PARTIAL))
    await settle()
    backlog = [
        asyncio.create_task(
            scheduler.submit(lambda t=t: request(t, Priority.FINAL), Priority.FINAL, owner="A")
        )
        for t in ("a1", "a2", "a3", "a4", "a5")
    ]
    await settle()
    honest = asyncio.create_task(
        scheduler.submit(lambda: request("b1", Priority.FINAL), Priority.FINAL, owner="B")
    )
    other = asyncio.create_task(
        scheduler.submit(lambda: request("c1", Priority.FINAL), Priority.FINAL, owner="C")
    )
    anonymous = asyncio.create_task(
        scheduler.submit(lambda: request("n1", Priority.FINAL), Priority.FINAL)
    )
    await settle()
    for _ in range(9):
        gen.gate.set()
        await settle()
        gen.gate.clear()
    gen.gate.set()
    await asyncio.gather(blocker, *backlog, honest, other, anonymous)
    order = [batch[0] for batch in gen.batches]
    assert order == ["blocker", "a1", "b1", "c1", "n1", "a2", "a3", "a4", "a5"]
    await scheduler.close()


async def test_a_connection_that_waited_its_turn_does_not_bank_turns() -> None:
    """An owner absent for many rounds joins the current one, not the ones it missed:
    its finals alternate with those of the owner served meanwhile."""
    gen = RecordingGenerator(max_batch_size=1)
    scheduler = Scheduler(gen)
    scheduler.start()
    gen.gate.set()
    for index in range(4):  # A alone: four rounds go by
        await scheduler.submit(lambda i=index: request(f"a{i}"), Priority.FINAL, owner="A")
    gen.gate.clear()
    blocker = asyncio.create_task(scheduler.submit(lambda: request("blocker"), Priority.PARTIAL))
    await settle()
    tasks = [
        asyncio.create_task(scheduler.submit(lambda t=t: request(t), Priority.FINAL, owner=o))
        for t, o in [("a4", "A"), ("a5", "A"), ("b1", "B"), ("b2", "B"), ("a6", "A")]
    ]
    await settle()
    gen.gate.set()
    await asyncio.gather(blocker, *tasks)
    assert [b[0] for b in gen.batches[5:]] == ["b1", "a4", "b2", "a5", "a6"]
    await scheduler.close()
