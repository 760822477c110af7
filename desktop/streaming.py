"""The desktop's streaming client: segmenter events in, text events out, nothing lost.

Runs its own asyncio loop on its own thread. The audio thread hands it segmenter events
with :meth:`DictationClient.submit` (cheap, thread-safe). It keeps every utterance's
audio until that utterance's final arrives; when the server goes away it reconnects
with backoff and replays the unfinished utterances from their first sample, so a
server restart mid-sentence still yields the whole sentence.

Callbacks run on the client's thread; a GUI forwards them to its own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from desktop.audio.segmenter import (
    AudioChunk,
    EndReason,
    Event,
    UtteranceEnded,
    UtteranceStarted,
)
from desktop.audio.timeline import UtteranceTimeline
from desktop.client import AuthFailed, ServerLink, ServerUnreachable, TlsError, VersionMismatch
from protocol.log_redaction import TRANSCRIPTS_ENV, env_flag
from protocol.messages import Error, ErrorCode, Final, Partial, Status

log = logging.getLogger(__name__)

#: A CA file to trust for ``wss://`` when none is given (tingxie-cli, or overriding an
#: empty ``ca_file`` setting of the tray app).
CA_FILE_ENV = "TINGXIE_CA_FILE"


def _ca_file_or_default(ca_file: str | None) -> str | None:
    return ca_file or os.environ.get(CA_FILE_ENV) or None


class ClientState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"  # connected, model ready
    MODEL_LOADING = "model_loading"  # connected, the server is still loading its model
    UNREACHABLE = "unreachable"  # retrying with backoff
    AUTH_FAILED = "auth_failed"  # token refused; retrying slowly
    VERSION_MISMATCH = "version_mismatch"  # not retried until reconfigured
    CLOSED = "closed"


@dataclass(frozen=True)
class StateChanged:
    state: ClientState
    detail: str = ""


@dataclass(frozen=True)
class PartialText:
    utterance_id: int
    stable: str
    unstable: str


@dataclass(frozen=True)
class FinalText:
    utterance_id: int
    text: str
    language: str | None
    timeline: UtteranceTimeline


@dataclass(frozen=True)
class UtteranceFailed:
    utterance_id: int
    message: str


ClientEvent = StateChanged | PartialText | FinalText | UtteranceFailed


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: first, doubling up to ``maximum``."""

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


@dataclass
class _Pending:
    """An utterance not yet finalised: everything needed to send it again."""

    local_id: int
    wire_id: str
    timeline: UtteranceTimeline
    chunks: list[bytes] = field(default_factory=list)
    ended: bool = False
    sent_chunks: int = 0  # how many chunks the current link has
    started_on_link: bool = False
    stopped_on_link: bool = False


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
    ) -> None:
        """``ca_file``: trusted for ``wss://`` instead of the system's CAs; default from
        the environment variable ``TINGXIE_CA_FILE``. ``log_transcripts``: let what was
        said into the logs (debugging only); default from ``TINGXIE_LOG_TRANSCRIPTS``."""
        self.url = url
        self.token = token
        self.ca_file = _ca_file_or_default(ca_file)
        self.log_transcripts = (
            env_flag(os.environ, TRANSCRIPTS_ENV) if log_transcripts is None else log_transcripts
        )
        self.language = language
        self.context = context
        self._on_event = on_event
        self._backoff = backoff or Backoff()
        self._keepalive = keepalive or Keepalive()
        self._clock = clock
        self._run_tag = secrets.token_hex(3)  # wire ids unique across client restarts
        self._pending: dict[int, _Pending] = {}
        self._cancels: list[str] = []  # wire ids to cancel on the current link
        self._link: ServerLink | None = None
        self._model_ready = False
        self.state = ClientState.CONNECTING
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._closing: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[None]] = set()

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
        return len(self._pending)

    # ---------------------------------------------------------------- client thread

    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._started.set()
        connector = asyncio.create_task(self._connect_forever())
        await self._closing.wait()
        connector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connector
        if self._link is not None:
            await self._link.close()
        self._set_state(ClientState.CLOSED)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    def _emit(self, event: ClientEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # a consumer bug must not kill the connection
            shown = repr(event) if self.log_transcripts else type(event).__name__
            log.exception("client event handler failed on %s", shown)

    def _set_state(self, state: ClientState, detail: str = "") -> None:
        if state is not self.state or detail:
            self.state = state
            log.info("client state: %s %s", state.value, detail)
            self._emit(StateChanged(state, detail))

    async def _sleep_or_wake(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _connect_forever(self) -> None:
        attempt = 0
        while True:
            self._set_state(ClientState.CONNECTING)
            try:
                link = await ServerLink.open(
                    self.url,
                    token=self.token,
                    client_name="tingxie",
                    ca_file=self.ca_file,
                    log_content=self.log_transcripts,
                    ping_interval_s=self._keepalive.interval_s,
                    ping_timeout_s=self._keepalive.timeout_s,
                )
            except AuthFailed as exc:
                self._set_state(ClientState.AUTH_FAILED, str(exc))
                await self._sleep_or_wake(self._backoff.auth_failed_s)
                continue
            except TlsError as exc:  # needs a new certificate or setting: retry slowly
                self._set_state(ClientState.UNREACHABLE, str(exc))
                await self._sleep_or_wake(self._backoff.auth_failed_s)
                continue
            except VersionMismatch as exc:
                self._set_state(ClientState.VERSION_MISMATCH, str(exc))
                await self._sleep_or_wake(3600.0)
                continue
            except ServerUnreachable as exc:
                attempt += 1
                delay = self._backoff.delay(attempt)
                self._set_state(ClientState.UNREACHABLE, f"{exc}; retrying in {delay:.1f} s")
                await self._sleep_or_wake(delay)
                continue
            attempt = 0
            self._link = link
            self._model_ready = link.ready.model_state == "ready"
            self._set_state(
                ClientState.READY if self._model_ready else ClientState.MODEL_LOADING,
                link.ready.server,
            )
            try:
                await self._flush_all()
                async for message in link.messages():
                    await self._on_server_message(message)
            except (OSError, ConnectionError) as exc:
                log.info("connection lost: %s", exc)
            finally:
                self._link = None
                with contextlib.suppress(Exception):
                    await link.close()
                self._cancels.clear()  # a new link has nothing open to cancel
                for pending in self._pending.values():  # the next link starts from zero
                    pending.started_on_link = pending.stopped_on_link = False
                    pending.sent_chunks = 0
            if self._pending:
                log.warning(
                    "server connection lost with %d utterance(s) unfinished; "
                    "they will be sent again",
                    len(self._pending),
                )
            self._set_state(ClientState.UNREACHABLE, "connection lost; reconnecting")

    # ---------------------------------------------------------------- sending

    def _on_segment_event(self, event: Event) -> None:
        if isinstance(event, UtteranceStarted):
            timeline = UtteranceTimeline(event.utterance_id, speech_started=event.detected_at)
            self._pending[event.utterance_id] = _Pending(
                event.utterance_id, f"{self._run_tag}-{event.utterance_id}", timeline
            )
        elif isinstance(event, AudioChunk):
            pending = self._pending.get(event.utterance_id)
            if pending is not None:
                pending.chunks.append(event.pcm)
        elif isinstance(event, UtteranceEnded) and event.reason is EndReason.CANCELLED:
            pending = self._pending.pop(event.utterance_id, None)
            if pending is None or not pending.started_on_link:
                return  # the server never heard of it
            # Sent by the next flush before anything else, so it precedes the next start.
            self._cancels.append(pending.wire_id)
        elif isinstance(event, UtteranceEnded):
            pending = self._pending.get(event.utterance_id)
            if pending is not None:
                pending.ended = True
                pending.timeline.speech_end_detected = event.detected_at or self._clock()
                pending.timeline.set_audio_positions(
                    event.start_sample,
                    event.end_sample,
                    event.speech_end_sample,
                    event.detected_at_sample,
                )
        else:
            return  # dropped candidates were never announced
        self._spawn(self._flush_all())

    async def _flush_all(self) -> None:
        """Bring the server up to date with every pending utterance, in order."""
        assert self._flush_lock is not None
        async with self._flush_lock:  # one sender at a time keeps frames in order
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        link = self._link
        if link is None or not self._model_ready:
            return
        try:
            while self._cancels:
                await link.cancel(self._cancels.pop(0))
            for pending in sorted(self._pending.values(), key=lambda p: p.local_id):
                if pending.stopped_on_link:
                    continue
                if not pending.started_on_link:
                    pending.started_on_link = True
                    await link.start(pending.wire_id, language=self.language, context=self.context)
                while pending.sent_chunks < len(pending.chunks):
                    chunk = pending.chunks[pending.sent_chunks]
                    pending.sent_chunks += 1
                    await link.send_audio(chunk)
                if pending.ended:
                    pending.stopped_on_link = True
                    await link.stop(pending.wire_id)
                    pending.timeline.stop_sent = self._clock()
                else:
                    break  # only one utterance is open at a time
        except Exception as exc:  # the receive loop notices the dead link and reconnects
            log.info("send failed: %s", exc)

    # ---------------------------------------------------------------- receiving

    def _by_wire_id(self, wire_id: str) -> _Pending | None:
        for pending in self._pending.values():
            if pending.wire_id == wire_id:
                return pending
        return None

    async def _on_server_message(self, message: object) -> None:
        if isinstance(message, Partial):
            pending = self._by_wire_id(message.id)
            if pending is not None and not pending.ended:
                if pending.timeline.first_partial is None:
                    pending.timeline.first_partial = self._clock()
                self._emit(PartialText(pending.local_id, message.stable, message.unstable))
        elif isinstance(message, Final):
            pending = self._by_wire_id(message.id)
            if pending is not None:
                del self._pending[pending.local_id]
                pending.timeline.final_received = self._clock()
                self._emit(
                    FinalText(pending.local_id, message.text, message.language, pending.timeline)
                )
        elif isinstance(message, Status):
            self._model_ready = message.model_state == "ready"
            if self._model_ready:
                self._set_state(ClientState.READY)
                await self._flush_all()
            else:
                self._set_state(ClientState.MODEL_LOADING, message.message)
        elif isinstance(message, Error):
            await self._on_error(message)

    async def _on_error(self, error: Error) -> None:
        pending = self._by_wire_id(error.id) if error.id else None
        if error.code is ErrorCode.NOT_READY and pending is not None:
            # Refused while the model loads: send it again once the server says ready.
            self._model_ready = False
            pending.started_on_link = pending.stopped_on_link = False
            pending.sent_chunks = 0
            self._set_state(ClientState.MODEL_LOADING, error.message)
        elif error.code is ErrorCode.SHUTTING_DOWN:
            log.info("server shutting down; will replay after reconnecting")
        elif pending is not None and error.code in (
            ErrorCode.ENGINE_ERROR,
            ErrorCode.UNSUPPORTED_AUDIO,
        ):
            del self._pending[pending.local_id]
            self._emit(UtteranceFailed(pending.local_id, error.message))
        else:
            log.warning("server error %s: %s", error.code.value, error.message)
