"""One utterance: its audio, its engine stream, its partial steps and its final."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from protocol.audio import SAMPLE_RATE
from protocol.messages import Final, Partial, ServerMessage, Timings
from server.audio_buffer import AudioBudget, AudioBuffer
from server.engine.base import (
    EngineStream,
    GenerationResult,
    Priority,
    RequestBuilder,
)
from server.scheduler import Scheduler

log = logging.getLogger(__name__)

Send = Callable[[ServerMessage], Awaitable[None]]


class Session:
    """Audio in, partials out while open; one final after :meth:`finish`.

    At most one partial step is in flight: audio that arrives meanwhile only marks
    that another step is wanted, and that step reads the newest audio when it is
    dispatched. A step still waiting in the queue when the utterance stops is
    dropped; one already running is let finish (a stateful policy may need it).
    """

    def __init__(
        self,
        utterance_id: str,
        stream: EngineStream,
        scheduler: Scheduler,
        send: Send,
        *,
        partial_interval_s: float,
        max_samples: int | None = None,
        budget: AudioBudget | None = None,
        owner: object = None,
    ) -> None:
        self.id = utterance_id
        self.audio = AudioBuffer(max_samples=max_samples, budget=budget)
        self._owner = owner  # whose turn this utterance's finals take (scheduler fairness)
        self._stream = stream
        self._scheduler = scheduler
        self._send = send
        self._partial_interval = int(partial_interval_s * SAMPLE_RATE)
        self._open = True
        self._partial_task: asyncio.Task[None] | None = None
        self._partial_wanted = False
        self._partial_dispatched = False
        self._samples_at_last_step = 0
        self._seq = 0
        self._last_partial_text = ""

    # ---------------------------------------------------------------- audio / partials

    def append(self, frame: bytes) -> None:
        """Raises AudioBudgetExceeded (frame not kept) when the server has no room."""
        self.audio.append(frame)
        if self.audio.n_samples - self._samples_at_last_step >= self._partial_interval:
            self._want_partial()

    def _want_partial(self) -> None:
        if not self._open or self._partial_interval <= 0:
            return
        if self._partial_task is None or self._partial_task.done():
            self._partial_task = asyncio.create_task(
                self._partial_loop(), name=f"partial-{self.id}"
            )
        else:
            self._partial_wanted = True

    def _submit_partial(
        self, build: RequestBuilder, priority: Priority
    ) -> Awaitable[GenerationResult]:
        """The runner partial steps get: it records which audio the step works on."""

        def mark_dispatched() -> None:
            self._partial_dispatched = True
            self._samples_at_last_step = self.audio.n_samples

        return self._scheduler.submit(build, priority, mark_dispatched)

    async def _partial_loop(self) -> None:
        self._partial_wanted = True
        while self._partial_wanted and self._open:
            self._partial_wanted = False
            self._partial_dispatched = False
            try:
                partial = await self._stream.step(self.audio, self._submit_partial)
                covered = self._samples_at_last_step
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failed partial is cosmetic; the final will report a real failure.
                log.exception("utterance %s: partial step failed", self.id)
                return
            finally:
                self._partial_dispatched = False
            if partial is None or not self._open or partial.text == self._last_partial_text:
                continue
            self._last_partial_text = partial.text
            self._seq += 1
            await self._send(
                Partial(
                    text=partial.text,
                    id=self.id,
                    stable=partial.stable,
                    unstable=partial.unstable,
                    seq=self._seq,
                    audio_ms=covered * 1000.0 / SAMPLE_RATE,
                )
            )
            # Audio that arrived while this step ran may already warrant the next one.
            if self.audio.n_samples - self._samples_at_last_step >= self._partial_interval:
                self._partial_wanted = True

    async def _settle_partials(self) -> None:
        """Drop a queued partial step; let a running one complete."""
        task = self._partial_task
        if task is None or task.done():
            return
        if not self._partial_dispatched:
            task.cancel()
        # wait() neither re-raises the step's outcome nor swallows our own cancellation.
        await asyncio.wait({task})

    # ---------------------------------------------------------------- final / cancel

    async def finish(self) -> Final:
        """Close the utterance and decode it. Raises what the engine raised."""
        stop_at = time.monotonic()
        self._open = False
        await self._settle_partials()
        dispatched_at: list[float] = []

        def run(build: RequestBuilder, prio: Priority) -> Awaitable[GenerationResult]:
            return self._scheduler.submit(
                build, prio, lambda: dispatched_at.append(time.monotonic()), owner=self._owner
            )

        try:
            final = await self._stream.finish(self.audio, run)
        finally:
            audio_seconds = self.audio.seconds
            self.audio.release()
        done_at = time.monotonic()
        first_dispatch = dispatched_at[0] if dispatched_at else done_at
        return Final(
            text=final.text,
            id=self.id,
            language=final.language,
            timings=Timings(
                audio_ms=audio_seconds * 1000.0,
                queue_ms=(first_dispatch - stop_at) * 1000.0,
                engine_ms=(done_at - first_dispatch) * 1000.0,
                total_ms=(done_at - stop_at) * 1000.0,
            ),
        )

    async def cancel(self) -> None:
        """Stop all work for this utterance; nothing more is sent for it."""
        self._open = False
        task = self._partial_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        self.audio.release()
