"""What strangers learn and what they cost the log (loopback): /healthz without the
token, wrong-token back-off, throttled and escaped log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.server.helpers import next_json

TOKEN = "a-long-enough-test-token-0123456789"
READINESS_KEYS = {"status", "model_state", "model_loaded", "shutting_down"}


def get(port: int, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


async def test_healthz_beyond_loopback_shows_details_only_to_token_holders(start) -> None:
    server = await start(host="0.0.0.0", token=TOKEN)
    status, _, raw = await asyncio.to_thread(get, server.port, "/healthz")
    anonymous = json.loads(raw)
    assert status == 200 and set(anonymous) == READINESS_KEYS
    assert anonymous["model_state"] == "ready" and anonymous["model_loaded"] is True
    for wrong in ("nope", ""):
        status, _, raw = await asyncio.to_thread(get, server.port, "/healthz", wrong)
        assert set(json.loads(raw)) == READINESS_KEYS
    status, _, raw = await asyncio.to_thread(get, server.port, "/healthz", TOKEN)
    detailed = json.loads(raw)
    assert status == 200 and detailed["model"] == server.state.engine.generator.model
    assert {"connections", "sessions", "utterances_total", "model_error"} <= set(detailed)


async def test_healthz_on_loopback_keeps_what_the_launcher_reads(start) -> None:
    server = await start()
    _, _, raw = await asyncio.to_thread(get, server.port, "/healthz")
    body = json.loads(raw)
    assert {"model_state", "model", "model_error"} <= set(body)


async def test_repeated_wrong_tokens_back_off_and_log_little(
    start, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start(token=TOKEN)
    statuses = []
    with caplog.at_level(logging.WARNING, logger="server.app"):
        for _ in range(20):
            try:
                async with websockets.connect(f"{server.url}/?token=wrong"):
                    pass
            except InvalidStatus as exc:
                statuses.append(exc.response.status_code)
                retry_after = exc.response.headers.get("Retry-After")
    assert statuses[:5] == [401] * 5 and set(statuses[6:]) == {429}
    assert retry_after is not None and int(retry_after) >= 1
    token_lines = [r for r in caplog.records if "token" in r.getMessage()]
    assert 1 <= len(token_lines) <= 2
    # While blocked, even the right token waits: guessing gains nothing meanwhile.
    with pytest.raises(InvalidStatus) as blocked:
        async with websockets.connect(f"{server.url}/?token={TOKEN}"):
            pass
    assert blocked.value.response.status_code == 429


async def test_a_flood_of_bad_frames_is_a_few_log_lines(
    start, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start()
    with caplog.at_level(logging.INFO, logger="server.connection"):
        async with websockets.connect(server.url) as ws:
            for _ in range(300):
                await ws.send("not json")
            for _ in range(300):
                assert (await next_json(ws))["code"] == "bad_message"
    lines = [r for r in caplog.records if "bad_message" in r.getMessage()]
    assert 1 <= len(lines) <= 2


async def test_client_chosen_strings_cannot_forge_log_lines(
    start, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start()
    forged = "x\n2026-01-01 00:00:00,000 WARNING server.app: FORGED\r"
    with caplog.at_level(logging.DEBUG, logger="server"):
        async with websockets.connect(server.url) as ws:
            await ws.send(json.dumps({"event": forged}))
            assert (await next_json(ws))["type"] == "error"
            await ws.send(json.dumps({"event": "hello", "protocol": 1, "client": forged}))
            assert (await next_json(ws))["type"] == "ready"
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("server")]
    assert any("FORGED" in m for m in messages)  # logged, but on its own line
    assert not any("\n" in m or "\r" in m for m in messages)
