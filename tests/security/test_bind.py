"""A server that listens beyond loopback needs a token (or an explicit opt-out),
whatever form the address takes."""

from __future__ import annotations

import os

import pytest

from server.app import main as server_main
from server.config import ConfigError, is_loopback_host, parse_config

NAMES = {
    "box.lan": ["192.168.1.20"],
    "dual.lan": ["127.0.0.1", "10.0.0.5"],  # binds both: one of them is public
    "loop6.test": ["::1"],
    "127.0.0.1.attacker.test": ["203.0.113.9"],  # looks loopback, is not
    "myhost": ["127.0.1.1"],  # Debian's /etc/hosts entry for the machine's own name
}


def fake_resolve(name: str) -> list[str]:
    if name not in NAMES:
        raise OSError(-2, "Name or service not known")
    return NAMES[name]


PUBLIC = [
    "0.0.0.0",
    "::",
    "[::]",
    "",
    "192.168.1.20",
    "10.1.2.3",
    "172.16.0.1",
    "203.0.113.9",
    "fe80::1",
    "fe80::1%eth0",
    "2001:db8::1",
    "::ffff:192.168.1.2",
    "0:0:0:0:0:0:0:0",
    "box.lan",
    "dual.lan",
    "127.0.0.1.attacker.test",
]
LOOPBACK = [
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "[::1]",
    "0:0:0:0:0:0:0:1",
    "::ffff:127.0.0.1",
    "loop6.test",
    "myhost",
]


@pytest.mark.parametrize("host", PUBLIC)
def test_non_loopback_host_without_token_is_refused_naming_the_flags(host: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(["--host", host], env={}, resolve=fake_resolve)
    message = str(info.value)
    for flag in ("--token", "TINGXIE_TOKEN", "--insecure-no-auth"):
        assert flag in message
    assert parse_config(["--host", host, "--token", "t"], {}, fake_resolve).token == "t"
    assert parse_config(["--host", host], {"TINGXIE_TOKEN": "t"}, fake_resolve).token == "t"
    insecure = parse_config(["--host", host, "--insecure-no-auth"], {}, fake_resolve)
    assert insecure.token is None and insecure.insecure_no_auth


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_host_needs_no_token(host: str) -> None:
    assert is_loopback_host(host, fake_resolve)
    assert parse_config(["--host", host], env={}, resolve=fake_resolve).token is None


def test_empty_token_counts_as_none() -> None:
    with pytest.raises(ConfigError, match="--token"):
        parse_config(["--host", "0.0.0.0", "--token", ""], env={}, resolve=fake_resolve)


def test_unresolvable_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot resolve"):
        parse_config(["--host", "nowhere.invalid"], env={}, resolve=fake_resolve)


def test_localhost_resolves_to_loopback_here() -> None:
    assert is_loopback_host("localhost")  # the real resolver


def test_bracketed_ipv6_is_bound_without_brackets() -> None:
    assert parse_config(["--host", "[::1]"], env={}).host == "::1"


@pytest.mark.parametrize("host", ["::", "192.168.1.20", "0.0.0.0"])
def test_entry_point_exits_2_with_the_message(
    host: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("TINGXIE_")]:
        monkeypatch.delenv(name)
    assert server_main(["--engine", "fake", "--host", host]) == 2
    err = capsys.readouterr().err
    assert "listens beyond this machine" in err and "--token" in err
