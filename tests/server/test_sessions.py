"""Utterance lifecycle on one connection: ids, cancel, ordering, limits."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.server.helpers import next_json, until_type

SECOND = b"\x00\x10" * 16000  # 1 s of a constant non-silent signal


async def test_server_assigns_ids_and_finals_come_in_stop_order(start) -> None:
    server = await start(fake_per_batch_ms=20.0)
    async with websockets.connect(server.url) as ws:
        # A long utterance then a short one: the short one decodes fast but its
        # final must not overtake the first (old clients have no ids to sort by).
        await ws.send(json.dumps({"event": "start"}))
        await ws.send(SECOND * 1)
        await ws.send(json.dumps({"event": "stop"}))
        await ws.send(json.dumps({"event": "start", "id": "mine"}))
        await ws.send(SECOND[:3200])
        await ws.send(json.dumps({"event": "stop"}))
        first = await until_type(ws, "final")
        second = await until_type(ws, "final")
    assert first["id"] == "u1" and second["id"] == "mine"


async def test_cancel_drops_the_utterance_without_a_final(start) -> None:
    server = await start()
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start", "id": "gone"}))
        await ws.send(SECOND)
        await ws.send(json.dumps({"event": "cancel"}))
        await ws.send(json.dumps({"event": "start", "id": "kept"}))
        await ws.send(SECOND)
        await ws.send(json.dumps({"event": "stop", "id": "kept"}))
        final = await until_type(ws, "final")
        assert final["id"] == "kept"
        await ws.send(json.dumps({"event": "cancel", "id": "gone"}))
        error = await until_type(ws, "error")
        assert error["code"] == "no_utterance"


async def test_stop_with_an_unknown_id_is_an_error(start) -> None:
    server = await start()
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start", "id": "a"}))
        await ws.send(json.dumps({"event": "stop", "id": "b"}))
        error = await until_type(ws, "error")
        assert error["code"] == "no_utterance" and error["id"] == "b"


async def test_sessions_per_connection_limit(start) -> None:
    server = await start(fake_per_batch_ms=300.0)
    server.state.limits = server.state.limits.__class__(max_sessions_per_connection=2)
    async with websockets.connect(server.url) as ws:
        for name in ("a", "b"):
            await ws.send(json.dumps({"event": "start", "id": name}))
            await ws.send(SECOND)
            await ws.send(json.dumps({"event": "stop"}))
        await ws.send(json.dumps({"event": "start", "id": "c"}))
        error = await until_type(ws, "error")
        assert error["code"] == "too_many_sessions" and error["id"] == "c"
        assert (await until_type(ws, "final"))["id"] == "a"
        assert (await until_type(ws, "final"))["id"] == "b"
        # Once decoded, the slots are free again.
        await ws.send(json.dumps({"event": "start", "id": "c"}))
        await ws.send(json.dumps({"event": "stop"}))
        assert (await until_type(ws, "final"))["id"] == "c"


async def test_duplicate_id_of_a_decoding_utterance_is_refused(start) -> None:
    server = await start(fake_per_batch_ms=300.0)
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start", "id": "x"}))
        await ws.send(SECOND)
        await ws.send(json.dumps({"event": "stop"}))
        await ws.send(json.dumps({"event": "start", "id": "x"}))
        error = await until_type(ws, "error")
        assert error["code"] == "duplicate_id"
        assert (await until_type(ws, "final"))["id"] == "x"


async def test_utterance_too_long_is_finished_at_the_limit(start) -> None:
    server = await start(partial_interval_ms=0.0)
    server.state.limits = server.state.limits.__class__(max_utterance_seconds=2.0)
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start", "id": "long"}))
        for _ in range(3):
            await ws.send(SECOND)
        error = await next_json(ws)
        assert error["code"] == "utterance_too_long" and error["id"] == "long"
        final = await until_type(ws, "final")
        assert final["id"] == "long" and final["timings"]["audio_ms"] == 2000.0
        await ws.send(SECOND)  # the rest has no open utterance
        assert (await next_json(ws))["code"] == "no_utterance"


async def test_unsupported_sample_rate_is_refused(start) -> None:
    server = await start()
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start", "sample_rate": 48000}))
        assert (await next_json(ws))["code"] == "unsupported_audio"


async def test_hello_with_an_impossible_version_is_fatal(start) -> None:
    server = await start()
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "hello", "protocol": 0}))
        error = await next_json(ws)
        assert error["code"] == "unsupported_version" and error["fatal"] is True
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1002


async def test_empty_utterance_gives_an_empty_final(start) -> None:
    server = await start()
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start"}))
        await ws.send(json.dumps({"event": "stop"}))
        final = await until_type(ws, "final")
        assert final["text"] == ""
