"""The desktop's streaming client: the asyncio driver of the client machine.

Runs its own asyncio loop on its own thread. The audio thread hands it segmenter events
with :meth:`DictationClient.submit` (cheap, thread-safe). Everything the protocol
decides — the ledger of utterances, deadlines, admission, what each server error means,
replay after a reconnect — is :class:`protocol.client_machine.ClientMachine`'s; this
module only moves frames, messages and clock ticks between it and a socket, and keeps
connecting: whatever goes wrong with a connection is logged and retried with backoff.

Callbacks run on the client's thread; a GUI forwards them to its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from desktop.audio.segmenter import (
    AudioChunk,
    EndReason,
    Event,
    UtteranceEnded,
    UtteranceStarted,
)
from desktop.client import (
    AuthFailed,
    ServerLink,
    ServerUnreachable,
    TlsError,
    VersionMismatch,
    close_wait_s,
)
from protocol.client_events import (
    ClientEvent,
    ClientState,
    FailReason,
    FinalText,
    PartialText,
    StateChanged,
    UtteranceCancelled,
    UtteranceFailed,
)
from protocol.client_machine import ClientMachine, Frame, MachineConfig
from protocol.log_redaction import TRANSCRIPTS_ENV, env_flag

__all__ = [
    "CA_FILE_ENV",
    "Backoff",
    "ClientEvent",
    "ClientState",
    "DictationClient",
    "FailReason",
    "FinalText",
    "Keepalive",
    "MachineConfig",
    "PartialText",
    "StateChanged",
    "UtteranceCancelled",
    "UtteranceFailed",
]

log = logging.getLogger(__name__)

#: A CA file to trust for ``wss://`` when none is given (tingxie-cli, or overriding an
#: empty ``ca_file`` setting of the tray app).
CA_FILE_ENV = "TINGXIE_CA_FILE"


def _ca_file_or_default(ca_file: str | None) -> str | None:
    return ca_file or os.environ.get(CA_FILE_ENV) or None


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: first, doubling up to ``maximum``; ``slow_s`` after a refusal
    that retrying soon cannot fix (token, certificate, protocol version)."""

    first_s: float = 0.25
    maximum_s: float = 5.0
    auth_failed_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum_s, self.first_s * 2.0 ** max(0, attempt - 1))


@dataclass(frozen=True)
class Keepalive:
    """How soon a link that went silent without closing (network roam, sleep, a lost
    NAT entry) is given up for a new one: a ping every ``interval_s``, and no pong
    within ``timeout_s`` drops it; unfinished utterances are then replayed."""

    interval_s: float = 5.0
    timeout_s: float = 10.0

    @property
    def gives_up_within_s(self) -> float:
        """The longest a silent link is kept: the next ping, no pong, then the close
        handshake that a dead link never answers."""
        return self.interval_s + self.timeout_s + close_wait_s(self.timeout_s)


#: Opening a link: connect, then the server's ``ready`` within this many seconds.
OPEN_TIMEOUT_S = 10.0


class DictationClient:
    def __init__(
        self,
        url: str,
        on_event: Callable[[ClientEvent], None],
        *,
        token: str | None = None,
        ca_file: str | None = None,
        language: str | None = None,
        context: str = "",
        backoff: Backoff | None = None,
        keepalive: Keepalive | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_transcripts: bool | None = None,
        machine: MachineConfig | None = None,
        open_timeout_s: float = OPEN_TIMEOUT_S,
    ) -> None:
        """``ca_file``: trusted for ``wss://`` instead of the system's CAs; default from
        the environment variable ``TINGXIE_CA_FILE``. ``log_transcripts``: let what was
        said into the logs (debugging only); default from ``TINGXIE_LOG_TRANSCRIPTS``.
        ``machine``: deadlines and bounds of the ledger."""
        self.url = url
        self.token = token
        self.ca_file = _ca_file_or_default(ca_file)
        self.log_transcripts = (
            env_flag(os.environ, TRANSCRIPTS_ENV) if log_transcripts is None else log_transcripts
        )
        self._on_event = on_event
        self._backoff = backoff or Backoff()
        self._keepalive = keepalive or Keepalive()
        self._open_timeout_s = open_timeout_s
        self._clock = clock
        # Wire ids unique across client restarts: the run tag.
        self._machine = ClientMachine(
            secrets.token_hex(3), machine, language=language, context=context
        )
        self._link: ServerLink | None = None
        self._giving_up = False  # this link is being closed at the machine's request
        self._outbox: asyncio.Queue[Frame] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._closing: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._calm_wait = False  # waiting, unconnected, for an utterance (or the refresh)

    # ---------------------------------------------------------------- settings

    @property
    def language(self) -> str | None:
        return self._machine.language

    @language.setter
    def language(self, value: str | None) -> None:
        self._machine.language = value  # read at the next start

    @property
    def context(self) -> str:
        return self._machine.context

    @context.setter
    def context(self, value: str) -> None:
        self._machine.context = value

    @property
    def state(self) -> ClientState:
        return self._machine.state

    # ---------------------------------------------------------------- any thread

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._thread_main, name="tingxie-client", daemon=True
        )
        self._thread.start()
        self._started.wait()

    def submit(self, event: Event) -> None:
        """Hand over a segmenter event (from the audio thread)."""
        assert self._loop is not None, "start() first"
        self._loop.call_soon_threadsafe(self._on_segment_event, event)

    def reconfigure(self, url: str, token: str | None, ca_file: str | None = None) -> None:
        """New server settings (all of them): reconnect with them (pending audio is
        replayed)."""
        assert self._loop is not None, "start() first"

        def apply() -> None:
            self.url, self.token, self.ca_file = url, token, _ca_file_or_default(ca_file)
            self._machine.leave_calm(self._clock())  # try the new settings now
            if self._link is not None:
                self._spawn(self._link.close())
            if self._wake is not None:
                self._wake.set()

        self._loop.call_soon_threadsafe(apply)

    def close(self, timeout: float = 5.0) -> None:
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def pending_utterances(self) -> int:
        return self._machine.pending

    # ---------------------------------------------------------------- client thread

    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        self._wake = asyncio.Event()
        self._started.set()
        connector = asyncio.create_task(self._connect_forever())
        await self._closing.wait()
        connector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connector
        if self._link is not None:
            with contextlib.suppress(Exception):
                await self._link.close()
        if self._timer is not None:
            self._timer.cancel()
        now = self._clock()
        self._machine.abandon(FailReason.STOPPED, "dictation was stopped before its text came", now)
        self._machine.link_failed(ClientState.CLOSED, "", now)
        self._deliver()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    def _emit(self, event: ClientEvent) -> None:
        if isinstance(event, StateChanged):
            log.info("client state: %s %s", event.state.value, event.detail)
        try:
            self._on_event(event)
        except Exception:  # a consumer bug must not kill the connection
            shown = repr(event) if self.log_transcripts else type(event).__name__
            log.exception("client event handler failed on %s", shown)

    def _deliver(self) -> None:
        """After every input to the machine: frames to the socket, events to the
        consumer, the timer to the next deadline, a useless link closed."""
        machine = self._machine
        frames = machine.data_to_send()
        if frames and self._outbox is not None:
            for frame in frames:
                self._outbox.put_nowait(frame)
        for event in machine.events_to_deliver():
            self._emit(event)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = machine.next_deadline()
        if due is not None and self._loop is not None:
            self._timer = self._loop.call_later(max(0.0, due - self._clock()), self._on_timer)
        if self._calm_wait and self._wake is not None and machine.wants_link(self._clock()):
            self._wake.set()  # an utterance started: connect now (its audio waits)
        if machine.wants_reconnect and self._link is not None and not self._giving_up:
            log.info("giving up this connection; the next one replays what is unfinished")
            self._giving_up = True
            self._spawn(self._link.close())

    def _on_timer(self) -> None:
        self._timer = None
        self._machine.tick(self._clock())
        self._deliver()

    async def _sleep_or_wake(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _connect_forever(self) -> None:
        """Never ends but by cancellation: every failure is logged and retried."""
        attempt = 0
        while True:
            try:
                await self._wait_while_calm()
                attempt = await self._connect_once(attempt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or a failure nobody foresaw: never fatal
                log.exception("client connection loop failed; retrying")
                attempt += 1
                # link_down: whatever link there was is gone; its work is replayed.
                self._machine.link_down(f"{type(exc).__name__}: {exc}", self._clock())
                self._deliver()
                await self._sleep_or_wake(self._backoff.delay(attempt))

    async def _wait_while_calm(self) -> None:
        """The server closed our idle link: stay unconnected until an utterance starts
        (or the periodic refresh), instead of reconnecting to be closed again."""
        machine = self._machine
        while not machine.wants_link(self._clock()):
            due = machine.calm_until()
            wait = 0.0 if due is None else max(0.0, due - self._clock())
            self._calm_wait = True
            try:
                await self._sleep_or_wake(wait)
            finally:
                self._calm_wait = False

    async def _connect_once(self, attempt: int) -> int:
        """One connection attempt and, if it succeeds, the link's life. Returns the
        attempt count for the next backoff."""
        machine = self._machine
        machine.connecting(self._clock())
        self._deliver()
        slow = self._backoff.auth_failed_s
        try:
            link = await ServerLink.open(
                self.url,
                token=self.token,
                client_name="tingxie",
                timeout_s=self._open_timeout_s,
                ca_file=self.ca_file,
                log_content=self.log_transcripts,
                ping_interval_s=self._keepalive.interval_s,
                ping_timeout_s=self._keepalive.timeout_s,
            )
        except AuthFailed as exc:
            return await self._failed(ClientState.AUTH_FAILED, str(exc), slow, attempt)
        except TlsError as exc:  # needs a new certificate or setting: retry slowly
            return await self._failed(ClientState.UNREACHABLE, str(exc), slow, attempt)
        except VersionMismatch as exc:
            return await self._failed(ClientState.VERSION_MISMATCH, str(exc), slow, attempt)
        except (ServerUnreachable, OSError, asyncio.TimeoutError) as exc:
            attempt += 1
            delay = self._backoff.delay(attempt)
            detail = f"{exc or type(exc).__name__}; retrying in {delay:.1f} s"
            return await self._failed(ClientState.UNREACHABLE, detail, delay, attempt)
        opened = self._clock()
        detail = await self._run_link(link)
        close_code = link.close_code
        pending = machine.pending
        if pending:
            log.warning(
                "server connection lost with %d utterance(s) unfinished; they will be sent again",
                pending,
            )
        lived = self._clock() - opened
        # A server that drops every link at once is not hammered: the backoff only
        # resets after a link that lasted.
        attempt = 0 if lived >= self._backoff.maximum_s else attempt + 1
        delay = self._backoff.delay(attempt) if attempt else 0.0
        machine.link_down(f"{detail}; reconnecting", self._clock(), close_code)
        self._deliver()
        if not machine.wants_link(self._clock()):
            return 0  # closed for idleness: calm, no backoff owed
        if delay:
            await self._sleep_or_wake(delay)
        return attempt

    async def _failed(self, state: ClientState, detail: str, delay: float, attempt: int) -> int:
        self._machine.link_failed(state, detail, self._clock())
        self._deliver()
        await self._sleep_or_wake(delay)
        return attempt

    async def _run_link(self, link: ServerLink) -> str:
        """Drive the machine over one link until it ends; returns why it ended."""
        self._link = link
        self._giving_up = False
        self._outbox = asyncio.Queue()
        sender = asyncio.create_task(self._send_frames(link, self._outbox))
        detail = "connection lost"
        try:
            self._machine.link_up(link.ready, self._clock())
            self._deliver()
            async for message in link.messages():
                self._machine.receive(message, self._clock())
                self._deliver()
            detail = link.close_reason()
        except (OSError, ConnectionError) as exc:
            detail = f"connection lost: {exc}"
        finally:
            self._link = None
            self._outbox = None
            sender.cancel()
            # Not "await sender" under suppress(CancelledError): that would swallow this
            # task's own cancellation (close()) and the connection loop would go on.
            await asyncio.wait([sender])
            with contextlib.suppress(Exception):
                await link.close()
        log.info("link ended: %s", detail)
        return detail

    async def _send_frames(self, link: ServerLink, outbox: asyncio.Queue[Frame]) -> None:
        """One writer per link keeps frames in the machine's order."""
        while True:
            frame = await outbox.get()
            try:
                await link.send(frame)
            except Exception as exc:  # the receive loop notices the dead link
                log.info("send failed: %s", exc)
                await link.close()
                return

    # ---------------------------------------------------------------- segmenter events

    def _on_segment_event(self, event: Event) -> None:
        machine = self._machine
        now = self._clock()
        if isinstance(event, UtteranceStarted):
            machine.utterance_started(event.utterance_id, now, event.detected_at)
        elif isinstance(event, AudioChunk):
            machine.audio(event.utterance_id, event.pcm, now)
        elif isinstance(event, UtteranceEnded) and event.reason is EndReason.CANCELLED:
            machine.utterance_cancelled(event.utterance_id, now)
        elif isinstance(event, UtteranceEnded):
            positions = (
                event.start_sample,
                event.end_sample,
                event.speech_end_sample,
                event.detected_at_sample,
            )
            machine.utterance_ended(event.utterance_id, now, event.detected_at, positions)
        else:
            return  # dropped candidates were never announced
        self._deliver()
