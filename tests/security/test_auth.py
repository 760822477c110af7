"""The token check at the handshake: via header or query, one code path for missing
and wrong tokens, constant-time comparison."""

from __future__ import annotations

import asyncio
import hmac
import urllib.request

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from desktop.client import AuthFailed, ServerLink
from server import access
from server.access import offered_token, token_matches

TOKEN = "kR4v-secret-token-0123456789"


async def handshake_status(url: str, headers: dict[str, str] | None = None) -> int:
    """101 if the WebSocket opened, else the HTTP status the server answered."""
    try:
        async with websockets.connect(url, additional_headers=headers):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/", {"Authorization": f"Bearer {TOKEN}"}, 101),
        (f"/?token={TOKEN}", None, 101),
        ("/", {"Authorization": f"bearer  {TOKEN} "}, 101),  # scheme is case-insensitive
        ("/", None, 401),
        ("/", {"Authorization": "Bearer wrong"}, 401),
        ("/", {"Authorization": "Bearer "}, 401),
        ("/?token=wrong", None, 401),
        ("/?token=", None, 401),
        (f"/?token={TOKEN[:-1]}", None, 401),  # a prefix is not the token
        # A header, when present, is the token: a right one in the query does not rescue it.
        (f"/?token={TOKEN}", {"Authorization": "Bearer wrong"}, 401),
        (f"/?token={TOKEN}", {"Authorization": "Basic abc"}, 101),  # not a bearer header
    ],
)
async def test_handshake_answers_401_unless_the_token_is_right(
    start, path: str, headers: dict[str, str] | None, status: int
) -> None:
    server = await start(token=TOKEN)
    assert await handshake_status(server.url + path, headers) == status


async def test_desktop_client_sends_the_token_in_a_header(start) -> None:
    server = await start(token=TOKEN)
    async with await ServerLink.open(server.url, token=TOKEN) as link:
        assert link.ready.model_state == "ready"
    for token in (None, "wrong"):
        with pytest.raises(AuthFailed, match="HTTP 401"):
            await ServerLink.open(server.url, token=token)


async def test_missing_and_wrong_tokens_take_the_same_constant_time_path(
    start, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    server = await start(token=TOKEN)
    assert await handshake_status(server.url) == 401
    assert await handshake_status(server.url, {"Authorization": "Bearer x"}) == 401
    assert await handshake_status(server.url, {"Authorization": f"Bearer {TOKEN}"}) == 101
    assert len(compared) == 3
    # Fixed-size digests are compared, so not even the token's length shows in the timing.
    assert {len(a) for a, _ in compared} == {len(b) for _, b in compared} == {32}


def test_offered_token_prefers_the_header() -> None:
    assert offered_token("Bearer abc", "/?token=xyz") == "abc"
    assert offered_token(None, "/?token=xyz") == "xyz"
    assert offered_token("Basic Zm9v", "/?token=xyz") == "xyz"
    assert offered_token(None, "/ws") == ""
    assert offered_token("Bearer", "/") == ""


def test_token_matches_only_the_exact_token() -> None:
    assert token_matches(TOKEN, TOKEN)
    for other in ("", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), " " + TOKEN):
        assert not token_matches(other, TOKEN)


async def test_healthz_needs_no_token_but_websocket_does(start) -> None:
    server = await start(token=TOKEN)
    url = f"http://127.0.0.1:{server.port}/healthz"

    def get() -> int:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)

    assert await asyncio.to_thread(get) == 200
    assert await handshake_status(server.url + "/healthz/x") == 401
