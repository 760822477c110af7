"""A client written for the original article's protocol works unchanged."""

from __future__ import annotations

import json

import websockets

from tests.conftest import Recording
from tests.server.helpers import fake_final, next_json, send_pcm


async def test_article_client_sequence_gets_partials_and_the_right_final(
    start, recordings: list[Recording]
) -> None:
    server = await start()
    recording = next(r for r in recordings if r.id == "ps_0880")
    # Exactly what the article's client does: no hello, start, PCM, stop.
    async with websockets.connect(server.url, ping_interval=None) as ws:
        for _ in range(2):  # and again on the same socket
            await ws.send(json.dumps({"event": "start"}))
            await send_pcm(ws, recording.pcm(), realtime=True)
            await ws.send(json.dumps({"event": "stop"}))
            partials = []
            while True:
                message = await next_json(ws)
                if message["type"] == "final":
                    break
                assert message["type"] == "partial"
                partials.append(message["text"])
            assert message["text"] == fake_final(recording)
            assert len(partials) >= 3, "real-time audio of 3 s should give partials"
            assert all(isinstance(p, str) and p for p in partials)


async def test_every_server_message_carries_type(start, recordings) -> None:
    server = await start()
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "hello", "protocol": 1}))
        ready = await next_json(ws)
        assert ready["type"] == "ready" and ready["protocol"] == 1
        assert ready["model_state"] == "ready" and "cancel" in ready["capabilities"]
        await ws.send(b"\x00\x00")  # audio before start
        error = await next_json(ws)
        assert error["type"] == "error" and error["code"] == "no_utterance"
