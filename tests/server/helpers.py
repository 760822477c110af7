"""Raw-socket helpers for server tests (what any client would do on the wire)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

from protocol.audio import BYTES_PER_SECOND
from server.engine.fake import text_for_audio
from tests.conftest import Recording

CHUNK = 3200  # 100 ms frames


def fake_final(recording: Recording, language: str | None = None) -> str:
    """What the fake engine must answer for this recording, received intact."""
    return text_for_audio(recording.samples(), language=language)


async def send_pcm(ws: ClientConnection, pcm: bytes, realtime: bool = False) -> None:
    began = time.monotonic()
    for offset in range(0, len(pcm), CHUNK):
        if realtime:
            await asyncio.sleep(max(0.0, began + offset / BYTES_PER_SECOND - time.monotonic()))
        await ws.send(pcm[offset : offset + CHUNK])


async def next_json(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(raw, str):
            message: dict[str, Any] = json.loads(raw)
            return message


async def until_type(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """Skip messages (partials, ...) until one of type ``kind``."""
    deadline = time.monotonic() + timeout
    while True:
        message = await next_json(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] == kind:
            return message


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` every 10 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)
