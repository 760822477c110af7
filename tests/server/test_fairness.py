"""Finals take turns across connections (loopback, one model call at a time)."""

from __future__ import annotations

import asyncio
import json
import time

import websockets
from websockets.asyncio.client import ClientConnection

from tests.server.helpers import until_type, wait_until

PCM = b"\x10\x00" * 3200  # 0.2 s


async def finals_with_times(ws: ClientConnection, count: int) -> list[tuple[str, float]]:
    got = []
    for _ in range(count):
        final = await until_type(ws, "final", timeout=20)
        got.append((final["id"], time.monotonic()))
    return got


async def test_a_backlog_on_one_connection_delays_another_by_one_call(start) -> None:
    server = await start(fake_per_batch_ms=150.0, max_batch_size=1, partial_interval_ms=0.0)
    async with websockets.connect(server.url) as backlog, websockets.connect(server.url) as honest:
        for index in range(4):  # the per-connection limit of stopped utterances
            await backlog.send(json.dumps({"event": "start", "id": f"b{index}"}))
            await backlog.send(PCM)
            await backlog.send(json.dumps({"event": "stop"}))
        scheduler = server.state.scheduler
        await wait_until(lambda: scheduler.in_flight == 1 and scheduler.queue_depth == 3)
        await honest.send(json.dumps({"event": "start", "id": "h"}))
        await honest.send(PCM)
        await honest.send(json.dumps({"event": "stop"}))
        backlog_finals, honest_finals = await asyncio.gather(
            finals_with_times(backlog, 4), finals_with_times(honest, 1)
        )
    order = [i for i, _ in sorted(backlog_finals + honest_finals, key=lambda f: f[1])]
    # b0 was running; first come, first served would put h last.
    assert order == ["b0", "h", "b1", "b2", "b3"]
