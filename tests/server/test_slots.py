"""Slot policy (loopback): idle sockets time out and give way; handshakes are bounded;
an honest client gets through a crowd of hostile sockets."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import websockets
from websockets.asyncio.client import ClientConnection

from protocol.messages import CloseCode
from server.app import RunningServer
from tests.server.helpers import next_json, send_pcm, until_type, wait_until

ONE_SECOND_PCM = b"\x10\x00" * 16000


def with_limits(server: RunningServer, **limits: object) -> None:
    server.state.limits = replace(server.state.limits, **limits)  # type: ignore[arg-type]


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return ws.close_code


async def test_ready_advertises_the_idle_timeout(start) -> None:
    server = await start()
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "hello", "protocol": 1}))
        ready = await until_type(ws, "ready")
    assert ready["limits"]["idle_timeout_s"] == server.config.limits.idle_timeout_s > 0


async def test_an_idle_connection_is_closed_after_the_idle_timeout(start) -> None:
    server = await start()
    with_limits(server, idle_timeout_s=0.3)
    began = time.monotonic()
    async with websockets.connect(server.url) as ws:
        assert await closed_with(ws) == CloseCode.IDLE_TIMEOUT
        assert ws.close_reason == "idle timeout"
    assert 0.25 < time.monotonic() - began < 3.0
    await wait_until(lambda: not server.state.connections)


async def test_messages_and_decoding_utterances_keep_a_connection(start) -> None:
    # The final takes longer than the idle timeout.
    server = await start(fake_per_batch_ms=500.0, partial_interval_ms=0.0)
    with_limits(server, idle_timeout_s=0.3)
    async with websockets.connect(server.url) as ws:
        for _ in range(4):  # a client that talks stays, however long
            await asyncio.sleep(0.15)
            await ws.send(json.dumps({"event": "hello", "protocol": 1}))
        await until_type(ws, "ready")
        await ws.send(json.dumps({"event": "start"}))
        await send_pcm(ws, ONE_SECOND_PCM)
        await ws.send(json.dumps({"event": "stop"}))
        final = await until_type(ws, "final")  # 0.5 s of decoding: no idle close meanwhile
        assert final["type"] == "final"
        # Idle from the final on: closed one timeout later, not at once.
        after_final = time.monotonic()
        assert await closed_with(ws) == CloseCode.IDLE_TIMEOUT
        assert time.monotonic() - after_final > 0.2


async def test_an_open_utterance_without_audio_is_not_idle(start) -> None:
    server = await start()
    with_limits(server, idle_timeout_s=0.2)
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start"}))
        await asyncio.sleep(0.6)
        assert ws.close_code is None
        await ws.send(json.dumps({"event": "stop"}))
        assert (await until_type(ws, "final"))["text"] == ""


async def test_at_the_limit_a_newcomer_displaces_the_longest_idle(start) -> None:
    server = await start()
    with_limits(server, max_connections=3)
    async with (
        websockets.connect(server.url) as oldest,
        websockets.connect(server.url) as busy,
    ):
        await busy.send(json.dumps({"event": "start"}))  # dictating: never displaced
        async with websockets.connect(server.url) as newer:
            await wait_until(lambda: len(server.state.connections) == 3)
            async with websockets.connect(server.url) as newcomer:
                assert await closed_with(oldest) == CloseCode.DISPLACED
                assert "connection limit" in (oldest.close_reason or "")
                await newcomer.send(json.dumps({"event": "start"}))
                await send_pcm(newcomer, ONE_SECOND_PCM)
                await newcomer.send(json.dumps({"event": "stop"}))
                assert (await until_type(newcomer, "final"))["type"] == "final"
                assert newer.close_code is None and busy.close_code is None
        await busy.send(json.dumps({"event": "stop"}))
        assert (await until_type(busy, "final"))["type"] == "final"


async def test_a_stalled_handshake_is_dropped_at_the_deadline(start) -> None:
    server = await start(handshake_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    began = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    assert time.monotonic() - began < 3.0
    writer.close()


async def test_pending_handshakes_are_bounded_oldest_first(start) -> None:
    server = await start(max_pending_handshakes=4)
    assert server.gate is not None
    silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(10)]
    await wait_until(lambda: server.gate is not None and server.gate.dropped >= 6)
    assert len(server.gate.pending) <= 4
    # The six oldest were dropped; the four newest still wait for their request.
    for reader, _ in silent[:6]:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    # A newcomer displaces a silent one and completes its handshake at once.
    async with websockets.connect(server.url, open_timeout=2) as ws:
        await ws.send(json.dumps({"event": "hello", "protocol": 1}))
        assert (await next_json(ws))["type"] == "ready"
    for _, writer in silent:
        writer.close()


async def _hostile_sockets(server: RunningServer, count: int) -> list[object]:
    """A mix of what abusers do: sit idle after the handshake, trickle one frame header
    and stop, or open TCP and never send the handshake."""
    held: list[object] = []
    for index in range(count):
        kind = index % 3
        if kind == 2:
            held.append(await asyncio.open_connection("127.0.0.1", server.port))
            continue
        ws = await websockets.connect(server.url, open_timeout=5)
        if kind == 1:
            ws.transport.write(b"\x82")  # a binary frame's first byte, nothing more
        held.append(ws)
    return held


async def test_an_honest_article_client_gets_through_hostile_sockets(start) -> None:
    server = await start(max_pending_handshakes=32)
    with_limits(server, max_connections=64)
    hostile = await _hostile_sockets(server, 300)
    try:
        await wait_until(lambda: len(server.state.connections) == 64)
        began = time.monotonic()
        # The original article's protocol: no hello, start / PCM / stop, read the final.
        async with websockets.connect(server.url, open_timeout=2) as ws:
            await ws.send(json.dumps({"event": "start"}))
            await send_pcm(ws, ONE_SECOND_PCM)
            await ws.send(json.dumps({"event": "stop"}))
            final = await until_type(ws, "final", timeout=5)
        took = time.monotonic() - began
        assert final["type"] == "final" and "text" in final
        # Not queued behind them: they would hold their slots for the handshake timeout
        # (10 s) or the idle timeout (300 s); well under 1 s unloaded.
        assert took < 2.0, f"honest client needed {took:.2f} s"
        assert len(server.state.connections) <= 64
    finally:
        for item in hostile:
            if isinstance(item, tuple):
                item[1].close()
            else:
                item.transport.abort()  # type: ignore[attr-defined]
