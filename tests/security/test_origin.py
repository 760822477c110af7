"""Browsers: a web page's scripts may connect only from an allowed origin. Clients that
send no Origin header (the desktop app, tingxie-cli, scripts) are not affected."""

from __future__ import annotations

import json

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from server.access import origin_allowed
from server.config import ConfigError, normalize_origin, parse_config

TOKEN = "origin-test-token-0123456789"


async def status_with_origin(url: str, origin: str | None) -> int:
    """101 if the WebSocket opened (and answered hello), else the HTTP status."""
    try:
        async with websockets.connect(url, origin=origin) as ws:
            await ws.send(json.dumps({"event": "hello"}))
            assert json.loads(await ws.recv())["type"] == "ready"
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_by_default_no_web_page_may_connect(start) -> None:
    server = await start()
    assert await status_with_origin(server.url, None) == 101
    for origin in ("https://evil.example", "http://127.0.0.1:8000", "null", "file://"):
        assert await status_with_origin(server.url, origin) == 403, origin


async def test_allowed_origins_connect_others_get_403(start) -> None:
    server = await start(
        allowed_origins=frozenset({"https://app.example.com", "http://localhost:5173"})
    )
    assert await status_with_origin(server.url, "https://app.example.com") == 101
    assert await status_with_origin(server.url, "http://localhost:5173") == 101
    assert await status_with_origin(server.url, None) == 101
    for origin in (
        "https://app.example.com.evil.example",
        "http://app.example.com",  # other scheme
        "https://app.example.com:8443",  # other port
        "http://localhost:5174",
    ):
        assert await status_with_origin(server.url, origin) == 403, origin


async def test_origin_is_checked_before_the_token(start) -> None:
    """A page on a foreign site is refused even if it holds the token."""
    server = await start(token=TOKEN, allowed_origins=frozenset({"https://app.example.com"}))
    url = f"{server.url}/?token={TOKEN}"
    assert await status_with_origin(url, "https://evil.example") == 403
    assert await status_with_origin(url, "https://app.example.com") == 101
    assert await status_with_origin(server.url, "https://app.example.com") == 401


def test_origin_flags_and_env_are_normalised() -> None:
    config = parse_config(
        [
            "--allowed-origin",
            "HTTPS://App.Example.com:443/",
            "--allowed-origin",
            "http://localhost:5173",
        ],
        env={"TINGXIE_ALLOWED_ORIGINS": "https://ignored.example"},  # flags win
    )
    assert config.allowed_origins == {"https://app.example.com", "http://localhost:5173"}
    from_env = parse_config([], env={"TINGXIE_ALLOWED_ORIGINS": "https://a.example, http://b:81"})
    assert from_env.allowed_origins == {"https://a.example", "http://b:81"}
    assert parse_config([], env={}).allowed_origins == frozenset()


@pytest.mark.parametrize(
    "value", ["null", "*", "app.example.com", "https://app.example.com/path", "https://"]
)
def test_unusable_origins_are_refused_at_start_up(value: str) -> None:
    with pytest.raises(SystemExit):  # argparse reports a bad flag value and exits 2
        parse_config(["--allowed-origin", value], env={})
    with pytest.raises(ConfigError, match="TINGXIE_ALLOWED_ORIGINS"):
        parse_config([], env={"TINGXIE_ALLOWED_ORIGINS": value})


def test_origin_allowed_rules() -> None:
    allowed = frozenset({normalize_origin("https://app.example.com")})
    assert origin_allowed([], allowed)
    assert origin_allowed(["https://APP.example.com"], allowed)
    assert origin_allowed(["https://app.example.com:443"], allowed)
    assert not origin_allowed(["https://app.example.com", "https://app.example.com"], allowed)
    assert not origin_allowed(["null"], allowed)
    assert not origin_allowed(["not an origin"], allowed)
