"""Admission on the wire (in-process loopback): a tingxie server answers every accepted
``start`` of a client that said hello with ``started``, before anything else about that
utterance; refused starts get only their error; the original protocol (no hello) sees
no new message type."""

from __future__ import annotations

import json

import websockets

from protocol.messages import START_ACK
from tests.server.helpers import next_json, until_type

SECOND = b"\x00\x10" * 16000  # 1 s of a constant non-silent signal


async def test_ready_advertises_start_ack_and_started_comes_first(start) -> None:  # type: ignore[no-untyped-def]
    server = await start(partial_interval_ms=0.0)
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "hello", "protocol": 1}))
        ready = await next_json(ws)
        assert ready["type"] == "ready" and START_ACK in ready["capabilities"]
        await ws.send(json.dumps({"event": "start", "id": "mine"}))
        await ws.send(SECOND)
        await ws.send(json.dumps({"event": "stop"}))
        assert await next_json(ws) == {"type": "started", "id": "mine"}
        assert (await until_type(ws, "final"))["id"] == "mine"
        await ws.send(json.dumps({"event": "start"}))  # the server picks the id
        started = await next_json(ws)
        assert started["type"] == "started" and started["id"].startswith("u")
        await ws.send(json.dumps({"event": "stop"}))
        assert (await until_type(ws, "final"))["id"] == started["id"]


async def test_a_refused_start_gets_its_error_and_no_started(start) -> None:  # type: ignore[no-untyped-def]
    server = await start(fake_per_batch_ms=300.0)
    server.state.limits = server.state.limits.__class__(max_sessions_per_connection=1)
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "hello", "protocol": 1}))
        await until_type(ws, "ready")
        await ws.send(json.dumps({"event": "start", "id": "a"}))
        await ws.send(SECOND)
        await ws.send(json.dumps({"event": "stop"}))
        await ws.send(json.dumps({"event": "start", "id": "b"}))  # a's slot is still busy
        seen = [await next_json(ws)]
        while seen[-1]["type"] != "error":
            seen.append(await next_json(ws))
        assert seen[0] == {"type": "started", "id": "a"}
        assert seen[-1]["code"] == "too_many_sessions" and seen[-1]["id"] == "b"
        assert {"type": "started", "id": "b"} not in seen
        final = await until_type(ws, "final")
        assert final["id"] == "a"


async def test_the_original_protocol_gets_no_started(start) -> None:  # type: ignore[no-untyped-def]
    server = await start(partial_interval_ms=0.0)
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start"}))  # no hello: the article's client
        await ws.send(SECOND)
        await ws.send(json.dumps({"event": "stop"}))
        types = [(await next_json(ws))["type"]]
        while types[-1] != "final":
            types.append((await next_json(ws))["type"])
    assert "started" not in types and set(types) <= {"partial", "final"}
