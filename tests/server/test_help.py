"""``tingxie-server --help`` and ``tingxie-cli --help`` tell every default truly, and
never print a token."""

from __future__ import annotations

import argparse

import pytest

from desktop import cli
from server import config as server_config

SECRET = "s3cret-token-never-in-help"


def help_text(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_help().split())  # one line: no wrapping in the way


@pytest.mark.parametrize(
    "build", [server_config.build_parser, cli.build_parser], ids=["server", "cli"]
)
def test_no_option_shows_a_meaningless_default(build) -> None:
    text = help_text(build())
    assert "default: None" not in text
    assert "(default: )" not in text
    assert "(default: [])" not in text


def test_defaults_decided_elsewhere_say_whose_they_are() -> None:
    text = help_text(server_config.build_parser())
    assert "(default: vLLM's own)" in text  # --max-num-seqs
    assert "(default: the engine's own: transformers" in text  # --max-batch-size
    assert "(default: 8765)" in text  # ordinary defaults are still printed


def test_server_help_never_prints_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"TINGXIE_TOKEN": SECRET}
    with pytest.raises(SystemExit):
        server_config.parse_config(["--help"], env)
    out = capsys.readouterr().out
    assert "--token" in out and SECRET not in out


def test_cli_help_never_prints_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINGXIE_TOKEN", SECRET)
    monkeypatch.setenv("TINGXIE_URL", f"ws://gpu-box:8765/?token={SECRET}")
    text = help_text(cli.build_parser())
    assert "--token" in text and SECRET not in text
    assert "(default: TINGXIE_TOKEN if set, else none)" in text
