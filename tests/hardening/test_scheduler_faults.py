"""A model call that fails or hangs fails only the request at fault, not its batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np
import pytest

from server.engine.base import GenerationRequest, GenerationResult, Generator, Priority
from server.engine.fake import FAULT_HANG, FAULT_RAISE, FakeGenerator, InjectedFault
from server.scheduler import GenerationTimeout, Scheduler


class CountingFake(FakeGenerator):
    """The fake with faults on, remembering which contexts each call carried."""

    def __init__(self, **kwargs: float | int | bool) -> None:
        super().__init__(inject_faults=True, **kwargs)  # type: ignore[arg-type]
        self.calls: list[list[str]] = []

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.calls.append([r.context for r in batch])
        return await super().generate(batch)


def request(context: str) -> GenerationRequest:
    audio = np.full(16_000, 0.1, dtype=np.float32)  # one block of sound: one word
    return GenerationRequest(audio=audio, context=context, priority=Priority.FINAL)


async def submit_together(scheduler: Scheduler, contexts: list[str]) -> list[object]:
    """Queue all requests in one loop iteration so they share a batch."""
    tasks = [
        asyncio.create_task(scheduler.submit(lambda c=c: request(c), Priority.FINAL))
        for c in contexts
    ]
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_failing_request_fails_alone_and_its_batch_mates_succeed() -> None:
    generator = CountingFake(max_batch_size=8)
    scheduler = Scheduler(generator)
    scheduler.start()
    try:
        results = await submit_together(scheduler, ["a", FAULT_RAISE, "b"])
    finally:
        await scheduler.close()
    assert isinstance(results[1], InjectedFault)
    assert isinstance(results[0], GenerationResult) and results[0].text
    assert isinstance(results[2], GenerationResult) and results[2].text
    # One failed batch of three, then each request once on its own.
    assert generator.calls[0] == ["a", FAULT_RAISE, "b"]
    assert sorted(map(tuple, generator.calls[1:])) == [("a",), ("b",), (FAULT_RAISE,)]
    assert scheduler.stats.retried_alone == 3


async def test_a_hung_request_times_out_and_the_others_of_its_batch_get_results() -> None:
    generator = CountingFake(max_batch_size=8)
    scheduler = Scheduler(generator, request_timeout_s=0.3)
    scheduler.start()
    began = time.monotonic()
    try:
        results = await submit_together(scheduler, ["a", FAULT_HANG, "b"])
    finally:
        await scheduler.close()
    elapsed = time.monotonic() - began
    assert isinstance(results[1], GenerationTimeout)
    assert "0.3 s" in str(results[1])
    assert all(isinstance(r, GenerationResult) for r in (results[0], results[2]))
    # The batch timed out once, then the hung request alone once more.
    assert scheduler.stats.timeouts == 2
    assert 0.6 <= elapsed < 5.0


async def test_without_a_timeout_a_hung_call_is_waited_for() -> None:
    generator = CountingFake()
    scheduler = Scheduler(generator)  # request_timeout_s=None: no limit
    scheduler.start()
    task = asyncio.create_task(scheduler.submit(lambda: request(FAULT_HANG), Priority.FINAL))
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 0.5)
        assert scheduler.stats.timeouts == 0 and scheduler.in_flight == 1
    finally:
        task.cancel()
        await scheduler.close()


class SlowGenerator(Generator):
    """Takes ``seconds`` per call; never fails."""

    name = "slow"
    max_batch_size = 4

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        await asyncio.sleep(self.seconds)
        return [GenerationResult(text=r.context) for r in batch]


async def test_a_call_within_the_timeout_is_untouched() -> None:
    scheduler = Scheduler(SlowGenerator(0.05), request_timeout_s=2.0)
    scheduler.start()
    try:
        results = await submit_together(scheduler, ["x", "y"])
    finally:
        await scheduler.close()
    assert [r.text for r in results] == ["x", "y"]  # type: ignore[union-attr]
    assert scheduler.stats.timeouts == 0 and scheduler.stats.retried_alone == 0


async def test_a_model_that_stops_answering_costs_three_timeouts_not_one_per_request() -> None:
    """Every request hangs: the batch times out, then its requests retried alone share one
    deadline two timeouts away, and whatever is left after it fails at once."""
    generator = CountingFake(max_batch_size=8)
    scheduler = Scheduler(generator, request_timeout_s=0.3)
    scheduler.start()
    began = time.monotonic()
    try:
        results = await submit_together(scheduler, [FAULT_HANG] * 6)
    finally:
        await scheduler.close()
    elapsed = time.monotonic() - began
    assert all(isinstance(r, GenerationTimeout) for r in results)
    assert len(generator.calls) == 3  # the batch, then two requests alone
    assert 0.9 <= elapsed < 2.1  # one timeout per request would take 0.3 + 6 × 0.3 = 2.1 s


async def test_a_hung_request_retried_first_leaves_its_batch_mates_time_for_theirs() -> None:
    """The shared retry deadline leaves room for the hung request's own timeout and then
    for the batch-mates queued behind it."""
    generator = CountingFake(max_batch_size=8)
    scheduler = Scheduler(generator, request_timeout_s=0.3)
    scheduler.start()
    try:
        results = await submit_together(scheduler, [FAULT_HANG, "a", "b", "c"])
    finally:
        await scheduler.close()
    assert isinstance(results[0], GenerationTimeout)
    assert all(isinstance(r, GenerationResult) for r in results[1:])
    assert [c for call in generator.calls[1:] for c in call] == [FAULT_HANG, "a", "b", "c"]
