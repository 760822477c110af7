"""The admission rule wired into the server (loopback): an address that keeps every
slot dictating gives one up to another address; the cap per address refuses with
server_busy / 1013 and spares loopback. The rule itself: test_admission.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from protocol.messages import CloseCode
from server.app import RunningServer
from server.slots import PeerAddress
from tests.server.helpers import CHUNK, next_json, send_pcm, until_type, wait_until

ONE_SECOND_PCM = b"\x10\x00" * 16000
#: Linux routes all of 127.0.0.0/8 to loopback: a second client address on one machine.
OTHER_LOOPBACK = "127.0.0.2"


def dictating(server: RunningServer) -> int:
    return sum(1 for c in server.state.connections if not c.idle)


async def stream_until_closed(ws: ClientConnection) -> None:
    """An always-busy client: one utterance, audio every 20 ms, never a stop."""
    await ws.send(json.dumps({"event": "start"}))
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.send(b"\x00\x01" * (CHUNK // 2))
            await asyncio.sleep(0.02)


async def refused_busy(ws: ClientConnection) -> str:
    """The fatal server_busy a refused newcomer gets, then close 1013; its message."""
    error = await next_json(ws)
    assert error["type"] == "error" and error["code"] == "server_busy"
    assert error["fatal"] is True
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1013
    return str(error["message"])


async def test_an_address_streaming_on_every_slot_gives_one_up_to_another_address(
    start,
) -> None:
    server = await start()
    server.state.limits = replace(server.state.limits, max_connections=3)
    async with (
        websockets.connect(server.url) as stalled,
        websockets.connect(server.url) as hog_a,
        websockets.connect(server.url) as hog_b,
    ):
        await stalled.send(json.dumps({"event": "start"}))  # open, then silent longest
        await wait_until(lambda: dictating(server) == 1)
        feeders = [asyncio.create_task(stream_until_closed(ws)) for ws in (hog_a, hog_b)]
        try:
            await wait_until(lambda: dictating(server) == 3)
            # Another client of the same address is refused: the shares stay as they are.
            async with websockets.connect(server.url) as same_address:
                assert "all of them dictating" in await refused_busy(same_address)
            # A client from another address gets a slot: 127.0.0.1's connection silent
            # longest is displaced, though it is dictating.
            async with websockets.connect(server.url, local_addr=(OTHER_LOOPBACK, 0)) as newcomer:
                await asyncio.wait_for(stalled.wait_closed(), 5)
                assert stalled.close_code == CloseCode.DISPLACED
                assert "connection limit" in (stalled.close_reason or "")
                await newcomer.send(json.dumps({"event": "start"}))
                await send_pcm(newcomer, ONE_SECOND_PCM)
                await wait_until(lambda: dictating(server) == 3)
                # The displaced client, reconnecting, finds 127.0.0.1 at its share.
                async with websockets.connect(server.url) as again:
                    await refused_busy(again)
                await newcomer.send(json.dumps({"event": "stop"}))
                assert (await until_type(newcomer, "final"))["type"] == "final"
                assert hog_a.close_code is None and hog_b.close_code is None
        finally:
            for feeder in feeders:
                feeder.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)


@pytest.fixture
def remote_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback clients counted as remote ones, so that the cap per address applies."""
    monkeypatch.setattr(
        "server.connection.peer_address",
        lambda remote: PeerAddress(str(remote[0]), loopback=False),
    )


async def test_the_cap_per_address_displaces_the_own_idle_then_refuses(
    start, remote_clients: None
) -> None:
    server = await start(max_connections_per_address=2)
    async with (
        websockets.connect(server.url) as first,
        websockets.connect(server.url) as idle,
    ):
        await first.send(json.dumps({"event": "start"}))
        await wait_until(lambda: dictating(server) == 1 and len(server.state.connections) == 2)
        async with websockets.connect(server.url) as second:
            await asyncio.wait_for(idle.wait_closed(), 5)
            assert idle.close_code == CloseCode.DISPLACED
            await second.send(json.dumps({"event": "start"}))
            await wait_until(lambda: dictating(server) == 2)
            async with websockets.connect(server.url) as third:
                message = await refused_busy(third)
                assert "limit per address" in message and "2 connections" in message
            # Another address is not held back by this one's cap.
            async with websockets.connect(server.url, local_addr=(OTHER_LOOPBACK, 0)) as other:
                await other.send(json.dumps({"event": "start"}))
                await other.send(json.dumps({"event": "stop"}))
                assert (await until_type(other, "final"))["text"] == ""
            for ws in (first, second):
                await ws.send(json.dumps({"event": "stop"}))
                assert (await until_type(ws, "final"))["type"] == "final"


async def test_loopback_clients_are_not_capped(start) -> None:
    server = await start(max_connections_per_address=1)
    async with (
        websockets.connect(server.url) as first,
        websockets.connect(server.url) as second,
    ):
        for ws in (first, second):
            await ws.send(json.dumps({"event": "start"}))
        await wait_until(lambda: dictating(server) == 2)
        for ws in (first, second):
            await ws.send(json.dumps({"event": "stop"}))
            assert (await until_type(ws, "final"))["text"] == ""
