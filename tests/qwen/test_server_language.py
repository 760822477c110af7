"""An unsupported language on ``start`` is a clear client error, through the real
Qwen3-ASR engine behind the real server."""

from __future__ import annotations

import json
from pathlib import Path

import websockets

from server.engine.qwen import build_qwen_engine
from tests.conftest import StartServer
from tests.qwen.conftest import needs_qwen_asr
from tests.server.helpers import next_json


@needs_qwen_asr
async def test_unknown_language_is_refused_known_one_accepted(
    start: StartServer, tiny_model_dir: Path
) -> None:
    engine = build_qwen_engine(str(tiny_model_dir), backend="transformers")
    server = await start(engine)
    await server.wait_loaded()
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start", "id": "k", "language": "klingon"}))
        error = await next_json(ws)
        assert error["type"] == "error" and error["code"] == "unsupported_language"
        assert error["id"] == "k" and "klingon" in error["message"]
        await ws.send(json.dumps({"event": "start", "id": "z", "language": "zh"}))
        await ws.send(json.dumps({"event": "stop"}))
        final = await next_json(ws)
        assert final["type"] == "final" and final["id"] == "z"
