"""A client that stops reading but keeps its TCP connection open (loopback): once its
socket buffers are full the server can send it nothing more. After ``--write-timeout``
the server drops it and frees its slot; nobody waits for it meanwhile — not another
client, not the server's shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from server.app import RunningServer
from tests.conftest import StartServer
from tests.server.helpers import send_pcm, until_type, wait_until

PCM = b"\x10\x00" * 16000  # 1 s


@pytest.fixture
async def stalled_reader() -> AsyncIterator[socket.socket]:
    """A socket for :func:`stall`; closed after the test."""
    sock = socket.socket()
    # A small receive buffer: the server's writes back up soon.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    yield sock
    sock.close()


async def stall(sock: socket.socket, server: RunningServer) -> None:
    """Connect, finish the handshake, then send ``hello`` after ``hello`` (each answered
    with ``ready``) and read nothing, until the server stops reading too: it is stuck
    writing to us."""
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", server.port))
    ws = ClientProtocol(parse_uri(server.url))
    ws.send_request(ws.connect())
    for data in ws.data_to_send():
        await loop.sock_sendall(sock, data)
    ws.receive_data(await asyncio.wait_for(loop.sock_recv(sock, 4096), 10))
    ws.events_received()  # the 101 answer; nothing is read after it
    hello = json.dumps({"event": "hello", "protocol": 1, "client": "x" * 200}).encode()
    for _ in range(1_000_000):
        ws.send_text(hello)
        try:
            for data in ws.data_to_send():
                await asyncio.wait_for(loop.sock_sendall(sock, data), 0.5)
        except asyncio.TimeoutError:
            return  # the server no longer reads what we send
    pytest.fail("the server kept reading: its writes to us never backed up")


async def test_a_client_that_stops_reading_is_dropped_and_others_go_on(
    start: StartServer, stalled_reader: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start(write_timeout_s=1.0)
    with caplog.at_level(logging.WARNING, logger="server.app"):
        await stall(stalled_reader, server)
        # Meanwhile another client dictates as usual.
        async with websockets.connect(server.url) as polite:
            await polite.send(json.dumps({"event": "start", "id": "u1"}))
            await send_pcm(polite, PCM)
            await polite.send(json.dumps({"event": "stop", "id": "u1"}))
            assert (await until_type(polite, "final"))["id"] == "u1"
            # The staller's slot is given back within the write timeout (not the
            # keepalive's 80 s: its pings sit behind the same full buffer).
            await wait_until(lambda: len(server.state.connections) == 1, timeout=10)
            assert not server.state.closing
    assert any("stopped reading" in r.getMessage() for r in caplog.records)


async def test_the_server_shuts_down_with_a_client_that_stopped_reading(
    start: StartServer, stalled_reader: socket.socket
) -> None:
    server = await start(write_timeout_s=1.0, shutdown_timeout_s=0.5)
    await stall(stalled_reader, server)
    # Its close waits for room in the same full buffer: without the write timeout the
    # shutdown would wait as long as the client's machine keeps the connection.
    await asyncio.wait_for(server.shutdown(), 15)
    assert not server.state.connections
