"""Auth, /healthz, model loading, engine failures, connection limit."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Sequence

import pytest
import websockets

from desktop.client import AuthFailed, ServerLink
from protocol.messages import Status
from server.engine.base import GenerationRequest, GenerationResult
from server.engine.fake import FakeGenerator
from server.engine.full_decode import FullDecodeEngine
from tests.server.helpers import next_json, until_type, wait_until


def get_health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_healthz_reports_model_sessions_and_queue(start) -> None:
    server = await start()
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start"}))
        await asyncio.sleep(0.05)
        status, body = await asyncio.to_thread(get_health, server.port)
    assert status == 200
    assert body["model_loaded"] is True and body["model_state"] == "ready"
    assert body["connections"] == 1 and body["sessions"] == 1
    assert body["queue_depth"] == 0 and body["engine"] == "full-decode"


async def test_token_is_checked_at_the_handshake(start) -> None:
    server = await start(token="s3cret")
    with pytest.raises(AuthFailed):
        await ServerLink.open(server.url)
    with pytest.raises(AuthFailed):
        await ServerLink.open(server.url, token="wrong")
    async with await ServerLink.open(server.url, token="s3cret") as link:
        assert link.ready.model_state == "ready"
    # Browsers cannot set headers: the token may also ride in the query string.
    async with websockets.connect(f"{server.url}/?token=s3cret") as ws:
        await ws.send(json.dumps({"event": "hello"}))
        assert (await next_json(ws))["type"] == "ready"
    # /healthz stays open for the tray app and scripts.
    status, _ = await asyncio.to_thread(get_health, server.port)
    assert status == 200


class SlowLoadingGenerator(FakeGenerator):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.fail = fail

    async def load(self) -> None:
        await self.release.wait()
        if self.fail:
            raise RuntimeError("CUDA out of memory while loading weights")


@pytest.mark.parametrize("fail", [False, True])
async def test_clients_connecting_during_load_are_told_not_dropped(start, fail: bool) -> None:
    generator = SlowLoadingGenerator(fail=fail)
    server = await start(FullDecodeEngine(generator))
    status, body = await asyncio.to_thread(get_health, server.port)
    assert status == 503 and body["model_state"] == "loading"
    async with await ServerLink.open(server.url) as link:
        assert link.ready.model_state == "loading"
        await link.start("early")
        messages = link.messages()
        error = await anext(messages)
        assert error.code.value == "not_ready" and "loading" in error.message  # type: ignore[union-attr]
        generator.release.set()
        status_message = await anext(messages)
        assert isinstance(status_message, Status)
        if fail:
            assert status_message.model_state == "failed"
            assert "out of memory" in status_message.message
            await link.start("late")
            late = await anext(messages)
            assert late.code.value == "not_ready" and "out of memory" in late.message  # type: ignore[union-attr]
        else:
            assert status_message.model_state == "ready"
    status, body = await asyncio.to_thread(get_health, server.port)
    assert status == (503 if fail else 200)
    assert body["model_state"] == ("failed" if fail else "ready")


class ExplodingGenerator(FakeGenerator):
    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if any(r.language == "boom" for r in batch):
            raise RuntimeError("kernel exploded")
        return await super().generate(batch)


async def test_generator_failure_is_an_engine_error_for_that_utterance(start) -> None:
    server = await start(FullDecodeEngine(ExplodingGenerator(max_batch_size=1)))
    await server.wait_loaded()
    async with websockets.connect(server.url) as bad, websockets.connect(server.url) as good:
        await bad.send(json.dumps({"event": "start", "language": "boom"}))
        await good.send(json.dumps({"event": "start"}))
        await bad.send(b"\x00\x10" * 8000)
        await good.send(b"\x00\x10" * 8000)
        await bad.send(json.dumps({"event": "stop"}))
        await good.send(json.dumps({"event": "stop"}))
        error = await until_type(bad, "error")
        assert error["code"] == "engine_error" and "kernel exploded" in error["message"]
        assert error["fatal"] is False
        final = await until_type(good, "final")
        assert final["text"]
        # The failing client's socket still works.
        await bad.send(json.dumps({"event": "start"}))
        await bad.send(json.dumps({"event": "stop"}))
        assert (await until_type(bad, "final"))["text"] == ""


async def test_connection_limit_tells_the_extra_client(start) -> None:
    """At the limit with every connection dictating, nobody can be displaced."""
    server = await start()
    server.state.limits = server.state.limits.__class__(max_connections=2)
    async with (
        websockets.connect(server.url) as first,
        websockets.connect(server.url) as second,
    ):
        for ws in (first, second):
            await ws.send(json.dumps({"event": "start"}))
        await wait_until(lambda: sum(c.active_sessions for c in server.state.connections) == 2)
        async with websockets.connect(server.url) as third:
            error = await next_json(third)
            assert error["code"] == "server_busy" and error["fatal"] is True
            await asyncio.wait_for(third.wait_closed(), 5)
            assert third.close_code == 1013
