"""The default server address is defined once (protocol.endpoint): the server listens
where the tray's settings, tingxie-cli and the first-run setup look by default (pure)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from desktop.settings import Settings
from desktop.setup.decide import PathKind
from desktop.setup.probe import ProbeConfig
from desktop.setup.steps import SetupChoice
from protocol.endpoint import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_SERVER_URL
from server.config import parse_config

ROOT = Path(__file__).parents[2]


def test_the_clients_default_url_is_where_the_server_listens_by_default() -> None:
    config = parse_config([], env={})
    url = urlsplit(DEFAULT_SERVER_URL)
    assert (url.scheme, url.hostname, url.port) == ("ws", config.host, config.port)
    assert (config.host, config.port) == (DEFAULT_HOST, DEFAULT_PORT)
    assert Settings().server_url == DEFAULT_SERVER_URL
    assert ProbeConfig(windows=False).port == DEFAULT_PORT
    assert SetupChoice(kind=PathKind.LOCAL_CPU).port == DEFAULT_PORT


def test_tingxie_cli_defaults_to_the_same_url(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from desktop.cli import build_parser

    monkeypatch.delenv("TINGXIE_URL", raising=False)
    assert build_parser().parse_args(["a.wav"]).url == DEFAULT_SERVER_URL


def test_the_address_is_written_nowhere_else_in_the_code() -> None:
    """A second copy would drift: only protocol/endpoint.py names the default port."""
    literal = re.compile(rf"\b{DEFAULT_PORT}\b")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for top in ("desktop", "server", "protocol")
        for path in sorted((ROOT / top).rglob("*.py"))
        if path != ROOT / "protocol" / "endpoint.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []
