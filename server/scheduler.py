"""Decides which generation requests run, and when.

- Model work never runs on the event loop: generators run it in threads or in an
  engine of their own; the scheduler only awaits them.
- Requests of all sessions are batched: up to ``generator.max_batch_size`` per call,
  up to ``generator.max_concurrent_batches`` calls at once.
- Finals run before partial steps. Finals take turns by owner (the connection):
  each owner's next final queues one turn after its previous one, so one connection's
  backlog delays another's final by at most one request. Partial steps: first come,
  first served.
- A request is *built* when it is dispatched, not when it is queued, so a partial step
  that waited in the queue runs on the newest audio of its session.
- A cancelled request that has not been dispatched is dropped; a dispatched one is
  aborted where the generator can abort (its result is discarded otherwise).
- A model call that fails or outlives ``request_timeout_s`` fails only the request that
  caused it: a batch of several is run again one request at a time, so one poisoned or
  hung utterance does not take the others of its batch down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from server.engine.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    Priority,
    RequestBuilder,
)

log = logging.getLogger(__name__)


@dataclass(order=True)
class _Item:
    priority: int
    turn: int  # round-robin round among finals (0 for partial steps)
    seq: int
    build: RequestBuilder = field(compare=False)
    future: asyncio.Future[GenerationResult] = field(compare=False)
    on_dispatch: Callable[[], None] | None = field(compare=False, default=None)
    queued_at: float = field(compare=False, default=0.0)
    alone: bool = field(compare=False, default=False)  # retried after its batch failed
    # Retries of a batch that timed out share one deadline, two timeouts away: room for
    # one hung request and its batch-mates, while a model that stopped answering costs
    # three timeouts in all, not one per request of the batch.
    retry_deadline: float | None = field(compare=False, default=None)


@dataclass
class SchedulerStats:
    batches: int = 0
    requests: int = 0
    largest_batch: int = 0
    dropped_before_dispatch: int = 0
    aborted: int = 0
    timeouts: int = 0
    retried_alone: int = 0


class GenerationTimeout(TimeoutError):
    """The model gave no result within the scheduler's request timeout."""


class Scheduler:
    def __init__(
        self,
        generator: Generator,
        partials_with_final: int | None = None,
        request_timeout_s: float | None = None,
        max_partials_in_flight: int | None = None,
    ) -> None:
        """``partials_with_final``: how many partial steps may share a batch with a
        final (None: fill the batch). With a batch cost that grows per request, a final
        riding with many partials waits for all of them; finals are what users wait on.

        ``request_timeout_s``: longest a model call may take (None: no limit). A call
        past it is cancelled (aborted where the generator can; a generator that cannot
        abort keeps its thread busy, but the scheduler moves on).

        ``max_partials_in_flight``: most partial steps dispatched and unfinished at once
        (None: no bound). Further partial steps wait here and are built, on newer audio,
        when one finishes; finals are never held back by it. On a continuous-batching
        backend this keeps seats free for finals whatever the partial load."""
        self._generator = generator
        self._partials_with_final = partials_with_final
        self._request_timeout_s = request_timeout_s
        self._max_partials = max_partials_in_flight
        self._partials_in_flight = 0
        self._task_partials: dict[asyncio.Task[None], int] = {}
        self._heap: list[_Item] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._served_turn = 0  # turn of the latest final dispatched
        self._owner_turns: dict[Hashable, int] = {}  # turn of each owner's latest final
        self.stats = SchedulerStats()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch_forever(), name="scheduler")

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        for item in self._heap:
            if not item.future.done():
                item.future.cancel()
        self._heap.clear()

    # ---------------------------------------------------------------- API

    async def submit(
        self,
        build: RequestBuilder,
        priority: Priority,
        on_dispatch: Callable[[], None] | None = None,
        owner: Hashable | None = None,
    ) -> GenerationResult:
        """Queue a request; wait for its result. Cancelling the caller cancels it.

        ``owner`` (a connection) makes finals take turns with other owners' finals."""
        future: asyncio.Future[GenerationResult] = asyncio.get_running_loop().create_future()
        turn = self._turn_for(owner) if priority == Priority.FINAL else 0
        item = _Item(
            int(priority), turn, next(self._seq), build, future, on_dispatch, time.monotonic()
        )
        heapq.heappush(self._heap, item)
        self._wakeup.set()
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The caller went away (superseded step, cancelled utterance, disconnect).
            if not future.done():
                future.cancel()
            raise

    @property
    def queue_depth(self) -> int:
        """Requests waiting for dispatch (not counting ones already cancelled)."""
        return sum(1 for item in self._heap if not item.future.done())

    @property
    def in_flight(self) -> int:
        return len(self._running)

    # ---------------------------------------------------------------- internals

    def _turn_for(self, owner: Hashable | None) -> int:
        """The round a new final of ``owner`` joins: the current one, or the one after
        that owner's latest queued final (start-time fair queuing by request count)."""
        if owner is None:
            return self._served_turn
        turn = max(self._served_turn, self._owner_turns.get(owner, -1) + 1)
        self._owner_turns[owner] = turn
        if len(self._owner_turns) > 4096:  # owners whose turns are all past count as new
            served = self._served_turn
            self._owner_turns = {o: t for o, t in self._owner_turns.items() if t >= served}
        return turn

    def _take_batch(self) -> list[tuple[_Item, GenerationRequest]]:
        batch: list[tuple[_Item, GenerationRequest]] = []
        limit = self._generator.max_batch_size
        while self._heap and len(batch) < limit:
            if batch and self._heap[0].alone:
                break
            if self._partials_held(sum(item.priority == Priority.PARTIAL for item, _ in batch)):
                break
            if (
                self._partials_with_final is not None
                and batch
                and batch[0][0].priority == Priority.FINAL
                and self._heap[0].priority == Priority.PARTIAL
            ):
                # Finals sort first, so the rest of this batch would be partial steps.
                limit = min(limit, len(batch) + self._partials_with_final)
                if len(batch) >= limit:
                    break
            item = heapq.heappop(self._heap)
            if item.future.done():  # cancelled while queued
                self.stats.dropped_before_dispatch += 1
                continue
            if item.retry_deadline is not None and time.monotonic() >= item.retry_deadline:
                item.future.set_exception(self._timeout_error())
                continue
            try:
                request = item.build()
            except Exception as exc:  # a bug in a stream's builder fails that request only
                log.exception("building a request failed")
                item.future.set_exception(exc)
                continue
            if item.on_dispatch is not None:
                item.on_dispatch()
            if item.priority == Priority.FINAL:
                self._served_turn = max(self._served_turn, item.turn)
            batch.append((item, request))
            if item.alone:
                break
        return batch

    async def _dispatch_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while (
                self._heap
                and len(self._running) < self._generator.max_concurrent_batches
                and not self._partials_held(0)
            ):
                batch = self._take_batch()
                if not batch:
                    continue
                task = asyncio.create_task(self._run_batch(batch))
                self._running.add(task)
                partials = sum(item.priority == Priority.PARTIAL for item, _ in batch)
                self._task_partials[task] = partials
                self._partials_in_flight += partials
                task.add_done_callback(self._batch_done)

    def _partials_held(self, in_batch: int) -> bool:
        """Whether the next queued request is a partial step that must wait for the
        bound on partial steps in flight."""
        return (
            self._max_partials is not None
            and self._heap[0].priority == Priority.PARTIAL
            and self._partials_in_flight + in_batch >= self._max_partials
        )

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._partials_in_flight -= self._task_partials.pop(task, 0)
        self._wakeup.set()  # a slot is free: dispatch what queued meanwhile

    async def _run_batch(self, batch: list[tuple[_Item, GenerationRequest]]) -> None:
        items = [item for item, _ in batch]
        requests = [request for _, request in batch]
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        work = asyncio.ensure_future(self._generator.generate(requests))
        if self._generator.supports_abort:
            # Abort the model work once nobody waits for any of its results.
            def abort_if_abandoned(_: object) -> None:
                if all(i.future.cancelled() for i in items) and not work.done():
                    self.stats.aborted += 1
                    work.cancel()

            for item in items:
                item.future.add_done_callback(abort_if_abandoned)
        timeout_s = self._request_timeout_s
        deadline = items[0].retry_deadline if len(items) == 1 else None
        if deadline is not None and timeout_s is not None:
            timeout_s = max(0.0, min(timeout_s, deadline - time.monotonic()))
        try:
            results = await asyncio.wait_for(work, timeout_s)
        except asyncio.CancelledError:
            for item in items:
                if not item.future.done():
                    item.future.cancel()
            if not work.cancelled():
                raise
            return
        except asyncio.TimeoutError:  # wait_for has cancelled the call
            self.stats.timeouts += 1
            log.error(
                "generator %s gave no result within %g s for a batch of %d; abandoned",
                self._generator.name,
                self._request_timeout_s,
                len(items),
            )
            if len(items) > 1 and self._request_timeout_s is not None:
                deadline = time.monotonic() + 2 * self._request_timeout_s
                for item in items:
                    item.retry_deadline = deadline
            self._fail_or_retry_alone(items, self._timeout_error())
            return
        except Exception as exc:
            log.exception("generator %s failed on a batch of %d", self._generator.name, len(items))
            self._fail_or_retry_alone(items, exc)
            return
        if len(results) != len(items):
            mismatch = RuntimeError(
                f"generator {self._generator.name} returned {len(results)} results "
                f"for {len(items)} requests"
            )
            for item in items:
                if not item.future.done():
                    item.future.set_exception(mismatch)
            return
        for item, result in zip(items, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)

    def _timeout_error(self) -> GenerationTimeout:
        return GenerationTimeout(f"no result from the model within {self._request_timeout_s:g} s")

    def _fail_or_retry_alone(self, items: list[_Item], exc: BaseException) -> None:
        """A failed call of one request fails it; a failed batch is run again one request
        at a time (each rebuilt at dispatch), so only the request at fault fails."""
        waiting = [item for item in items if not item.future.done()]
        if len(items) == 1:
            for item in waiting:
                item.future.set_exception(exc)
            return
        for item in waiting:
            item.alone = True
            heapq.heappush(self._heap, item)  # same priority and place in line as before
        self.stats.retried_alone += len(waiting)
        self._wakeup.set()
