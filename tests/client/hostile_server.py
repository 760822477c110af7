"""Servers that are full, silent, broken or hostile, on loopback, for client tests.

Each :class:`Behaviour` is one way a server can fail a client. :class:`HostileServer`
serves it on 127.0.0.1 in the running asyncio loop and counts connections and starts,
so a test can tell that the client kept trying (and did not hammer).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from protocol.limits import Limits
from protocol.messages import START_ACK


class Behaviour(enum.Enum):
    CLOSE_AFTER_101 = "close_after_101"  # accepts the socket, closes it at once
    BUSY = "busy"  # error server_busy (fatal) and close 1013, as a full tingxie-server
    NEVER_READY = "never_ready"  # reads hello, never answers
    GARBAGE_BEFORE_READY = "garbage_before_ready"  # an invalid frame instead of ready
    UNKNOWN_ID_FINALS = "unknown_id_finals"  # answers every stop with someone else's final
    LONG_FINAL = "long_final"  # a legitimate 20 KB final (60 s of speech)
    HUGE_FRAME = "huge_frame"  # a 100 MB text frame after the first start
    NO_FINAL = "no_final"  # takes everything, never answers
    FINAL_FLOOD = "final_flood"  # thousands of finals for unknown ids, then the right one
    NOT_READY_PING_PONG = "not_ready_ping_pong"  # not_ready to every start, then "ready"
    # start-ack advertised: the first start is refused (too_many_sessions), later ones get
    # "started"; audio outside an accepted utterance is counted as discarded; a final
    # says how many bytes its utterance received
    ACK_REFUSE_FIRST = "ack_refuse_first"
    ACK_NEVER = "ack_never"  # start-ack advertised, no "started" ever
    # ready, then reads nothing more (a frozen server): once the socket buffers are full
    # the client's writes, pings and close wait for room that never comes
    STOPS_READING = "stops_reading"


#: The text of a LONG_FINAL: 20 KB, more than the old 16 KiB client limit.
LONG_TEXT = "word " * 4096
FLOOD = 5000
HUGE_BYTES = 100_000_000


def _ready(capabilities: tuple[str, ...] = ()) -> str:
    return json.dumps(
        {
            "type": "ready",
            "protocol": 1,
            "server": "hostile",
            "model_state": "ready",
            "capabilities": list(capabilities),
            "limits": Limits().to_json(),
        }
    )


def _final(text: str, utterance_id: str) -> str:
    return json.dumps({"type": "final", "text": text, "id": utterance_id})


class HostileServer:
    """``async with HostileServer(behaviour, port) as server``: serves until the block
    ends (the port is then free for a real server)."""

    def __init__(self, behaviour: Behaviour, port: int = 0) -> None:
        self.behaviour = behaviour
        self._port = port
        self.connections = 0
        self.starts = 0
        self.discarded_bytes = 0  # audio sent with no accepted utterance open
        self._server: Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> HostileServer:
        # A server that stops reading never reads the client's close either.
        close_timeout = 1.0 if self.behaviour is Behaviour.STOPS_READING else 10.0
        self._server = await serve(
            self._handle, "127.0.0.1", self._port, max_size=None, close_timeout=close_timeout
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def wait_connections(self, n: int, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while self.connections < n:
                await asyncio.sleep(0.02)

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        b = self.behaviour
        with contextlib.suppress(ConnectionClosed):
            if b is Behaviour.CLOSE_AFTER_101:
                await ws.close()
                return
            if b is Behaviour.BUSY:
                await ws.send(
                    json.dumps(
                        {
                            "type": "error",
                            "code": "server_busy",
                            "message": "server is at its limit of 1 connections",
                            "fatal": True,
                        }
                    )
                )
                await ws.close(1013, "server busy")
                return
            await ws.recv()  # hello
            if b is Behaviour.NEVER_READY:
                await ws.wait_closed()
                return
            if b is Behaviour.GARBAGE_BEFORE_READY:
                await ws.send("\x00{ not json")
                await ws.wait_closed()
                return
            if b in (Behaviour.ACK_REFUSE_FIRST, Behaviour.ACK_NEVER):
                await ws.send(_ready(("hello", START_ACK)))
                await self._serve_with_start_ack(ws)
                return
            await ws.send(_ready())
            if b is Behaviour.STOPS_READING:
                await ws.wait_closed()  # websockets stops reading past its queue limit
                return
            await self._serve_utterances(ws)

    async def _serve_with_start_ack(self, ws: ServerConnection) -> None:
        accepted: str | None = None  # the open utterance, once "started" was sent
        received = 0
        async for frame in ws:
            if isinstance(frame, bytes):
                if accepted is None:
                    self.discarded_bytes += len(frame)
                received += len(frame)
                continue
            message = json.loads(frame)
            event, utterance_id = message.get("event"), message.get("id", "")
            if event == "start":
                self.starts += 1
                received = 0
                if self.behaviour is Behaviour.ACK_NEVER:
                    continue
                if self.starts == 1:
                    refusal = {"type": "error", "code": "too_many_sessions", "message": "full"}
                    await ws.send(json.dumps({**refusal, "id": utterance_id}))
                    continue
                accepted = utterance_id
                await ws.send(json.dumps({"type": "started", "id": utterance_id}))
            elif event == "stop" and accepted is not None:
                await ws.send(_final(f"{received} bytes", accepted))
                accepted = None

    async def _serve_utterances(self, ws: ServerConnection) -> None:
        b = self.behaviour
        async for frame in ws:
            if isinstance(frame, bytes):
                continue
            message = json.loads(frame)
            event, utterance_id = message.get("event"), message.get("id", "")
            if event == "start":
                self.starts += 1
                if b is Behaviour.HUGE_FRAME:
                    await ws.send("x" * HUGE_BYTES)
                elif b is Behaviour.NOT_READY_PING_PONG:
                    await ws.send(
                        json.dumps(
                            {
                                "type": "error",
                                "code": "not_ready",
                                "message": "model is loading",
                                "id": utterance_id,
                            }
                        )
                    )
                    await ws.send(json.dumps({"type": "status", "model_state": "ready"}))
            elif event == "stop":
                if b is Behaviour.UNKNOWN_ID_FINALS:
                    await ws.send(_final("not yours", "x" + utterance_id))
                    await ws.send(_final("nobody's", ""))
                elif b is Behaviour.LONG_FINAL:
                    await ws.send(_final(LONG_TEXT, utterance_id))
                elif b is Behaviour.FINAL_FLOOD:
                    for n in range(FLOOD):
                        await ws.send(_final("flood", f"flood-{n}"))
                    await ws.send(_final("the right one", utterance_id))
