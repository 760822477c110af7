"""One WebSocket connection: the protocol state machine of docs/protocol.md.

A connection has at most one *open* utterance (receiving audio) and, besides it,
utterances that were stopped and are being decoded. Every client mistake is answered
with an ``error`` message to that client only; the socket stays up unless the error
is fatal.

Slots: a connection with no utterance open or decoding is *idle*. An idle connection
is closed after ``idle_timeout_s`` without a message (close code
:attr:`CloseCode.IDLE_TIMEOUT`), and at the connection limit a newcomer displaces the
connection idle longest (:attr:`CloseCode.DISPLACED`), so sockets that only sit there
cannot lock users out; server/slots.py has the whole admission rule (one address cannot
hold every slot, an optional cap per address). A displaced connection that is dictating
gives its slot up at once but first sends the finals of the utterances it had already
stopped (within ``ServerState.displaced_drain_s``): its client replays only the open one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from protocol.audio import BYTES_PER_SECOND, SAMPLE_RATE
from protocol.codec import ProtocolError, decode_client, encode_server
from protocol.messages import (
    PROTOCOL_VERSION,
    Cancel,
    CloseCode,
    Error,
    ErrorCode,
    Final,
    Hello,
    Ready,
    ServerMessage,
    Start,
    Started,
    Stop,
)
from server.audio_buffer import AudioBudgetExceeded
from server.engine.base import StreamOptions
from server.log_limits import escape, log_throttled
from server.session import Session
from server.slots import PeerAddress, Verdict, admit, peer_address
from server.state import CAPABILITIES, ModelState, ServerState

_connection_ids = itertools.count(1)


class _ConnectionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[conn {self.extra['conn']}] {msg}", kwargs  # type: ignore[index]


class Connection:
    def __init__(self, ws: ServerConnection, state: ServerState) -> None:
        self._ws = ws
        self._state = state
        self.id = next(_connection_ids)
        #: Where it comes from, as the admission rule counts connections.
        self.address: PeerAddress = peer_address(ws.remote_address)
        self.log = _ConnectionLog(logging.getLogger(__name__), {"conn": self.id})
        self._sessions: dict[str, Session] = {}  # open and still decoding
        self._open: Session | None = None
        self._finishing: dict[str, asyncio.Task[None]] = {}
        self._last_finish: asyncio.Task[None] | None = None
        self._said_hello = False
        self._told_no_utterance = False
        self._utterance_numbers = itertools.count(1)
        self._background: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        #: When the connection last received a message or finished an utterance.
        self.idle_since = self._loop.time()
        self._became_idle = asyncio.Event()  # wakes the idle watch after a final
        self._closing_reason = ""

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    @property
    def idle(self) -> bool:
        """No utterance open or decoding: closing it loses nobody's words."""
        return not self._sessions and not self._closing_reason

    def _idle_deadline(self) -> float | None:
        timeout = self._state.limits.idle_timeout_s
        if timeout <= 0 or not self.idle:
            return None
        return self.idle_since + timeout

    def _touch(self) -> None:
        self.idle_since = self._loop.time()
        self._became_idle.set()

    async def _watch_idle(self) -> None:
        """Close the connection once it has been idle for the idle timeout."""
        while not self._closing_reason:
            deadline = self._idle_deadline()
            if deadline is None:  # dictating, or no timeout: wait until idle again
                self._became_idle.clear()
                await self._became_idle.wait()
                continue
            delay = deadline - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # then look again: a message moves the deadline
                continue
            self.log.debug("idle for %g s: closing", self._state.limits.idle_timeout_s)
            self._closing_reason = "idle timeout"
            self._give_up_slot()  # the slot is free now, not after the close
            await self._ws.close(CloseCode.IDLE_TIMEOUT, "idle timeout")

    def displace(self) -> None:
        """Give this connection's slot to a newcomer, now. It takes no new work: the open
        utterance is dropped (its client sends it again after reconnecting) and later
        messages are ignored. Utterances already stopped are decoding: their finals
        are sent (decoding them again elsewhere would spend the model twice), within
        the drain deadline; then it closes with 4001."""
        self._give_up_slot()
        self._closing_reason = "displaced: server at its connection limit"
        dropped = self._drop_open()
        if dropped is not None:
            self.log.debug("displaced: open utterance %s dropped", escape(dropped.id))
        task = asyncio.create_task(self._leave_displaced(dropped), name=f"displaced-{self.id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _give_up_slot(self) -> None:
        """Leave the server's connections for its closing ones (``/healthz`` counts both)."""
        self._state.connections.discard(self)
        self._state.closing.add(self)

    async def _leave_displaced(self, dropped: Session | None) -> None:
        if dropped is not None:
            await dropped.cancel()
        await self._close_after_finals(
            CloseCode.DISPLACED, self._closing_reason, self._state.displaced_drain_s
        )

    def _drop_open(self) -> Session | None:
        """Forget the open utterance (the caller cancels it); it gets no final."""
        session, self._open = self._open, None
        if session is not None:
            self._sessions.pop(session.id, None)
        return session

    async def _close_after_finals(self, code: int, reason: str, timeout_s: float | None) -> None:
        """Let the utterances already stopped send their finals (for at most
        ``timeout_s``), then close; the close cancels what is left."""
        finishing = set(self._finishing.values())
        if finishing:
            _, late = await asyncio.wait(finishing, timeout=timeout_s)
            if late:
                self.log.warning(
                    "%d final(s) not ready within %g s; closing (%s)",
                    len(late),
                    timeout_s,
                    reason,
                )
        await self._ws.close(code, reason)

    def _take_slot(self) -> Verdict:
        """Join the server's connections if the admission rule lets it in, displacing
        the connection the rule names."""
        state = self._state
        admission = admit(
            self.address,
            state.connections,
            max_connections=state.limits.max_connections,
            max_per_address=state.max_connections_per_address,
        )
        victim = admission.victim
        if victim is not None:
            now = self._loop.time()
            log_throttled(
                self.log,
                state.log_throttle,
                "displaced",
                now,
                logging.INFO,
                "%s: displacing conn %d of %s (%s, silent %.0f s)",
                self._why_displaced(admission.verdict),
                victim.id,
                victim.address.key,
                "dictating" if admission.verdict is Verdict.DISPLACE_BUSY else "idle",
                now - victim.idle_since,
            )
            victim.displace()
        if not admission.verdict.refused:
            state.connections.add(self)
        return admission.verdict

    def _why_displaced(self, verdict: Verdict) -> str:
        """The log's words for a displacement."""
        if verdict is Verdict.DISPLACE_OWN_IDLE:
            return (
                f"{self.address.key} holds its limit of "
                f"{self._state.max_connections_per_address} connections"
            )
        limit = self._state.limits.max_connections
        if verdict is Verdict.DISPLACE_BUSY:
            return (
                f"at the limit of {limit} connections, all dictating: "
                "the address holding the most gives one up"
            )
        return f"at the limit of {limit} connections"

    # ---------------------------------------------------------------- main loop

    async def serve(self) -> None:
        state = self._state
        peer = self._ws.remote_address
        log_throttled(
            self.log,
            state.log_throttle,
            "connected",
            self._loop.time(),
            logging.INFO,
            "connected from %s",
            peer,
        )
        try:
            verdict = self._take_slot()
            if verdict.refused:
                await self._error(ErrorCode.SERVER_BUSY, self._refusal(verdict), fatal=True)
                await self._ws.close(1013, "server busy")
                return
            watch = asyncio.create_task(self._watch_idle(), name=f"idle-{self.id}")
            self._background.add(watch)
            watch.add_done_callback(self._background.discard)
            async for message in self._ws:
                if self._closing_reason:
                    continue  # displaced or timed out: no new work, only the close
                self.idle_since = self._loop.time()
                if isinstance(message, bytes):
                    await self._on_audio(message)
                else:
                    await self._on_text(message)
        except ConnectionClosed:
            pass
        finally:
            state.connections.discard(self)
            state.closing.discard(self)
            await self._abandon()
            log_throttled(
                self.log,
                state.log_throttle,
                "disconnected",
                self._loop.time(),
                logging.INFO,
                "disconnected (%s%s)",
                self._ws.close_code,
                f", {self._closing_reason}" if self._closing_reason else "",
            )

    def _refusal(self, verdict: Verdict) -> str:
        """Why a newcomer gets no slot, for its ``server_busy`` error."""
        if verdict is Verdict.REFUSE_ADDRESS:
            return (
                f"your address already holds {self._state.max_connections_per_address} "
                "connections (the server's limit per address), all of them dictating"
            )
        return (
            f"server is at its limit of {self._state.limits.max_connections} connections, "
            "all of them dictating"
        )

    async def _abandon(self) -> None:
        """The client is gone: stop all work done for it."""
        for session in list(self._sessions.values()):
            await session.cancel()
        for task in list(self._finishing.values()) + list(self._background):
            task.cancel()
        await asyncio.gather(*self._finishing.values(), *self._background, return_exceptions=True)
        self._sessions.clear()
        self._open = None

    async def drain(self) -> None:
        """Server shutdown: finish decoding stopped utterances, abandon the open one."""
        session = self._drop_open()
        if session is not None:
            await self._error(
                ErrorCode.SHUTTING_DOWN,
                "server is shutting down; utterance not finished, send it again",
                session.id,
            )
            await session.cancel()
        # The caller bounds the wait (--shutdown-timeout).
        await self._close_after_finals(1001, "server shutting down", None)

    # ---------------------------------------------------------------- sending

    async def _send(self, message: ServerMessage) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(encode_server(message))

    async def _error(
        self, code: ErrorCode, message: str, utterance_id: str = "", fatal: bool = False
    ) -> None:
        state = self._state
        state.errors_total += 1
        # Client mistakes repeat at the client's pace: one line per kind per interval.
        log_throttled(
            self.log,
            state.log_throttle,
            f"error:{code.value}",
            self._loop.time(),
            logging.INFO,
            "error %s: %s",
            code.value,
            escape(message),
        )
        await self._send(Error(code=code, message=message, id=utterance_id, fatal=fatal))

    def notify(self, message: ServerMessage) -> None:
        """Tell a client that said hello about a server event (from any task)."""
        if self._said_hello:
            task = asyncio.create_task(self._send(message))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # ---------------------------------------------------------------- control frames

    async def _on_text(self, text: str) -> None:
        try:
            message = decode_client(text)
        except ProtocolError as exc:
            await self._error(exc.code, exc.message)
            return
        if isinstance(message, Start):
            await self._on_start(message)
        elif isinstance(message, Stop):
            await self._on_stop(message)
        elif isinstance(message, Cancel):
            await self._on_cancel(message)
        elif isinstance(message, Hello):
            await self._on_hello(message)

    async def _on_hello(self, hello: Hello) -> None:
        if hello.protocol < 1:
            await self._error(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol {hello.protocol} is not supported; this server speaks "
                f"{PROTOCOL_VERSION}",
                fatal=True,
            )
            await self._ws.close(1002, "unsupported protocol version")
            return
        self._said_hello = True
        state = self._state
        log_throttled(
            self.log,
            state.log_throttle,
            "hello",
            self._loop.time(),
            logging.INFO,
            "hello from %s (protocol %d)",
            escape(hello.client),
            hello.protocol,
        )
        await self._send(
            Ready(
                protocol=PROTOCOL_VERSION,
                server=state.server_name,
                engine=state.engine.name,
                model=state.engine.generator.model,
                model_state=state.model_state.value,
                capabilities=CAPABILITIES,
                limits=state.limits.to_json(),
            )
        )

    async def _on_start(self, start: Start) -> None:
        state = self._state
        if state.shutting_down:
            await self._error(ErrorCode.SHUTTING_DOWN, "server is shutting down", start.id)
            return
        if state.model_state is not ModelState.READY:
            detail = f": {state.model_error}" if state.model_error else ""
            what = "failed to load" if state.model_state is ModelState.FAILED else "is loading"
            await self._error(ErrorCode.NOT_READY, f"the model {what}{detail}", start.id)
            return
        if start.sample_rate != SAMPLE_RATE:
            await self._error(
                ErrorCode.UNSUPPORTED_AUDIO,
                f"sample_rate {start.sample_rate} not supported; send {SAMPLE_RATE} Hz s16le mono",
                start.id,
            )
            return
        if self._open is not None:
            await self._error(
                ErrorCode.ALREADY_STARTED,
                f"utterance {self._open.id!r} is still open; send stop or cancel first",
                start.id,
            )
            return
        if start.id and start.id in self._sessions:
            await self._error(
                ErrorCode.DUPLICATE_ID, f"utterance {start.id!r} is still being decoded", start.id
            )
            return
        if len(self._sessions) >= state.limits.max_sessions_per_connection:
            await self._error(
                ErrorCode.TOO_MANY_SESSIONS,
                f"{len(self._sessions)} utterances still being decoded on this connection "
                f"(limit {state.limits.max_sessions_per_connection})",
                start.id,
            )
            return
        utterance_id = start.id or f"u{next(self._utterance_numbers)}"
        while utterance_id in self._sessions:  # server-chosen ids never collide
            utterance_id = f"u{next(self._utterance_numbers)}"
        try:
            stream = state.engine.open_stream(
                StreamOptions(language=start.language, context=start.context)
            )
        except ValueError as exc:  # the engine's word on options it cannot honour
            await self._error(ErrorCode.UNSUPPORTED_LANGUAGE, str(exc), start.id)
            return
        session = Session(
            utterance_id,
            stream,
            state.scheduler,
            self._send,
            partial_interval_s=state.partial_interval_s,
            max_samples=int(state.limits.max_utterance_seconds * SAMPLE_RATE) + 1,
            budget=state.audio_budget,
            owner=self.id,
        )
        self._sessions[utterance_id] = session
        self._open = session
        self._told_no_utterance = False
        state.utterances_total += 1
        self.log.debug("start %s (language=%s)", escape(utterance_id), start.language)
        if self._said_hello:  # "start-ack": before any of its audio is read
            await self._send(Started(id=utterance_id))

    def _resolve(self, utterance_id: str) -> Session | None:
        if not utterance_id:
            return self._open
        if self._open is not None and self._open.id == utterance_id:
            return self._open
        return None

    async def _on_stop(self, stop: Stop) -> None:
        session = self._resolve(stop.id)
        if session is None:
            await self._error(
                ErrorCode.NO_UTTERANCE,
                f"no open utterance {stop.id!r} to stop"
                if stop.id
                else "no open utterance to stop",
                stop.id,
            )
            return
        self._close_open(session)

    def _close_open(self, session: Session) -> None:
        """Stop receiving audio for ``session`` and decode it; finals go out in stop order."""
        if session is not self._open:
            return  # dropped while its caller awaited (the connection was displaced)
        self._open = None
        previous = self._last_finish
        task = asyncio.create_task(self._finish(session, previous), name=f"final-{session.id}")
        self._finishing[session.id] = task
        self._last_finish = task

    async def _finish(self, session: Session, previous: asyncio.Task[None] | None) -> None:
        message: ServerMessage
        try:
            message = await session.finish()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.exception("utterance %s: final failed", session.id)
            message = Error(
                code=ErrorCode.ENGINE_ERROR,
                message=f"recognition failed: {type(exc).__name__}: {exc}",
                id=session.id,
            )
        try:
            if previous is not None:
                # Finals leave in the order the utterances were stopped.
                await asyncio.wait({previous})
            if isinstance(message, Final):
                self._state.finals_total += 1
                audio_ms = message.timings.audio_ms if message.timings else 0.0
                # Empty utterances cost the model nothing, so a client could send them
                # as fast as it likes: they do not get a line of their own.
                self.log.log(
                    logging.INFO if audio_ms > 0 else logging.DEBUG,
                    "final %s: %.0f ms audio, %.0f ms after stop",
                    escape(session.id),
                    audio_ms,
                    message.timings.total_ms if message.timings else 0,
                )
            else:
                self._state.errors_total += 1
            await self._send(message)
        finally:
            self._sessions.pop(session.id, None)
            self._finishing.pop(session.id, None)
            if not self._sessions:
                self._touch()  # idle from now on, not from the stop

    async def _on_cancel(self, cancel: Cancel) -> None:
        session = self._resolve(cancel.id)
        if session is None:
            await self._error(
                ErrorCode.NO_UTTERANCE,
                f"no open utterance {cancel.id!r} to cancel" if cancel.id else "no open utterance",
                cancel.id,
            )
            return
        self._open = None
        self._sessions.pop(session.id, None)
        await session.cancel()
        if not self._sessions:
            self._touch()

    # ---------------------------------------------------------------- audio frames

    async def _on_audio(self, frame: bytes) -> None:
        session = self._open
        if session is None:
            if not self._told_no_utterance:  # once per stray burst, not per frame
                self._told_no_utterance = True
                await self._error(
                    ErrorCode.NO_UTTERANCE, "audio received with no open utterance; send start"
                )
            return
        limits = self._state.limits
        if len(frame) > limits.max_audio_frame_bytes:
            await self._error(
                ErrorCode.FRAME_TOO_LARGE,
                f"audio frame of {len(frame)} bytes exceeds {limits.max_audio_frame_bytes}; "
                "frame dropped, split audio into smaller frames",
                session.id,
            )
            return
        limit_bytes = int(limits.max_utterance_seconds * BYTES_PER_SECOND)
        room = limit_bytes - session.audio.raw_bytes
        if len(frame) > room:
            # Whole frames only (as for server_busy): the client locates the cut from the
            # final's timings.audio_ms and sends the rest from a frame boundary.
            await self._error(
                ErrorCode.UTTERANCE_TOO_LONG,
                f"utterance reached {limits.max_utterance_seconds:g} s; finished here, "
                "start a new one for the rest",
                session.id,
            )
            self._close_open(session)
            return
        try:
            session.append(frame)
        except AudioBudgetExceeded:
            await self._error(
                ErrorCode.SERVER_BUSY,
                "the server holds as much audio as it is configured to; utterance finished "
                "here, start a new one for the rest",
                session.id,
            )
            self._close_open(session)
