"""Malformed and hostile input: an error to that client, nothing for anyone else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from protocol.limits import HARD_MAX_FRAME_BYTES, MAX_AUDIO_FRAME_BYTES
from tests.conftest import Recording
from tests.server.helpers import fake_final, next_json, send_pcm, until_type


async def bystander(url: str, recording: Recording) -> str:
    """An innocent client streaming real speech at real time; returns its final."""
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"event": "start", "id": "innocent"}))
        await send_pcm(ws, recording.pcm(), realtime=True)
        await ws.send(json.dumps({"event": "stop", "id": "innocent"}))
        final = await until_type(ws, "final")
        assert final["id"] == "innocent"
        return str(final["text"])


Attack = Callable[[ClientConnection], Awaitable[None]]


async def expect_error(ws: ClientConnection, code: str) -> dict[str, object]:
    message = await until_type(ws, "error")
    assert message["code"] == code, message
    return message


async def bad_json(ws: ClientConnection) -> None:
    await ws.send("{this is not json")
    await expect_error(ws, "bad_message")


async def wrong_types(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"event": "start", "language": 42}))
    await expect_error(ws, "bad_message")
    await ws.send(json.dumps(["start"]))
    await expect_error(ws, "bad_message")
    await ws.send(json.dumps({"event": "launch"}))
    await expect_error(ws, "bad_message")


async def audio_before_start(ws: ClientConnection) -> None:
    for _ in range(20):  # a burst gets one error, not twenty
        await ws.send(b"\x01\x00" * 800)
    await expect_error(ws, "no_utterance")
    await ws.send(json.dumps({"event": "stop"}))
    await expect_error(ws, "no_utterance")  # the next error is the stop's, not a flood's


async def double_start(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"event": "start", "id": "a"}))
    await ws.send(json.dumps({"event": "start", "id": "b"}))
    error = await expect_error(ws, "already_started")
    assert error["id"] == "b"
    await ws.send(b"\x10\x00" * 8000)
    await ws.send(json.dumps({"event": "stop"}))
    final = await until_type(ws, "final")
    assert final["id"] == "a"  # the first utterance was kept


async def oversized_audio_frame(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"event": "start"}))
    await ws.send(b"\x00\x01" * (MAX_AUDIO_FRAME_BYTES // 2 + 1))
    await expect_error(ws, "frame_too_large")
    await ws.send(b"\x00\x01" * 1600)  # the utterance is still usable
    await ws.send(json.dumps({"event": "stop"}))
    await until_type(ws, "final")


async def oversized_text_frame(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"event": "start", "context": "x" * 40_000}))
    await expect_error(ws, "frame_too_large")


async def abrupt_disconnect_mid_utterance(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"event": "start"}))
    await ws.send(b"\x00\x10" * 16000)
    ws.transport.abort()  # TCP reset, no close frame


ATTACKS: dict[str, Attack] = {
    "bad_json": bad_json,
    "wrong_types": wrong_types,
    "audio_before_start": audio_before_start,
    "double_start": double_start,
    "oversized_audio_frame": oversized_audio_frame,
    "oversized_text_frame": oversized_text_frame,
    "abrupt_disconnect": abrupt_disconnect_mid_utterance,
}


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_attack_gets_error_and_leaves_others_untouched(
    name: str, start, recordings: list[Recording]
) -> None:
    server = await start()
    recording = next(r for r in recordings if r.id == "ps_cards_002")
    innocent = asyncio.create_task(bystander(server.url, recording))
    async with websockets.connect(server.url) as ws:
        await ATTACKS[name](ws)
    assert await innocent == fake_final(recording)
    # The server is healthy afterwards and holds nothing for the attacker.
    await asyncio.sleep(0.1)
    health = server.state.health()
    assert health["connections"] == 0 and health["sessions"] == 0


async def test_frame_above_hard_limit_closes_only_that_socket(start, recordings) -> None:
    server = await start()
    recording = next(r for r in recordings if r.id == "ps_cards_001")
    innocent = asyncio.create_task(bystander(server.url, recording))
    async with websockets.connect(server.url, max_size=None) as ws:
        await ws.send(json.dumps({"event": "start"}))
        await ws.send(b"\x00" * (HARD_MAX_FRAME_BYTES + 2))
        with pytest.raises(websockets.ConnectionClosed) as info:
            await next_json(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009  # message too big
    assert await innocent == fake_final(recording)


async def test_abrupt_disconnect_frees_the_session_and_its_queued_work(start) -> None:
    server = await start(fake_per_batch_ms=200.0)
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start"}))
        await ws.send(b"\x00\x10" * 16000)
        await ws.send(json.dumps({"event": "stop"}))
        ws.transport.abort()
    for _ in range(50):
        await asyncio.sleep(0.02)
        if server.state.health()["sessions"] == 0:
            break
    assert server.state.health()["sessions"] == 0
    assert server.state.scheduler.queue_depth == 0
