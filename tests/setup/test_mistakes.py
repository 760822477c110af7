"""Ordinary mistakes of a newcomer get one clear line each, never a traceback."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from desktop import cli, entry
from desktop.client import ServerLink
from desktop.setup.steps import check_remote
from server.config import build_parser as server_parser
from server.engine.fake import FakeGenerator
from server.engine.full_decode import FullDecodeEngine
from tests.conftest import SPEECH_DIR, free_port, spawn_fake_server

WAV = str(SPEECH_DIR / "ps_0880.wav")
TOKEN = "a-long-enough-test-token"


# ---------------------------------------------------------------- tingxie


def test_tingxie_without_the_desktop_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "PySide6", None)  # import PySide6 now fails
    assert entry.main(["--help"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'tingxie[desktop]'" in err and "Traceback" not in err
    assert entry.main(["--version"]) == 0  # needs nothing
    assert capsys.readouterr().out.startswith("tingxie ")


def test_tingxie_without_a_display_says_so_before_qt_aborts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert entry.main(["--settings-dir", "unused"]) == 2
    assert "no display" in capsys.readouterr().err
    assert entry.no_display({}, "linux") and not entry.no_display({}, "win32")
    assert not entry.no_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not entry.no_display({"QT_QPA_PLATFORM": "offscreen"}, "linux")


# ---------------------------------------------------------------- tingxie-cli


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_an_http_url_is_turned_into_advice(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli_error(capsys, "--url", "http://127.0.0.1:8765", WAV)
    assert code == 2 and "the server's is 'ws://127.0.0.1:8765'" in err
    code, err = cli_error(capsys, "--url", "https://asr.example", WAV)
    assert code == 2 and "'wss://asr.example'" in err
    code, err = cli_error(capsys, "--url", "127.0.0.1:8765", WAV)
    assert code == 2 and "not a server address like ws://host:port" in err


def test_nothing_to_dictate_and_both_are_told_apart(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli_error(capsys)
    assert code == cli.EXIT_USAGE and "nothing to dictate" in err and "not both" not in err
    code, err = cli_error(capsys, "--mic", WAV)
    assert code == cli.EXIT_USAGE and "not both" in err


def test_an_empty_file_is_called_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    code, err = cli_error(capsys, str(empty))
    assert code == cli.EXIT_USAGE and "not a PCM WAV file (the file is empty)" in err
    cut = tmp_path / "cut.wav"
    cut.write_bytes((SPEECH_DIR / "ps_0880.wav").read_bytes()[:30])
    code, err = cli_error(capsys, str(cut))
    assert code == cli.EXIT_USAGE and "()" not in err


def test_vad_without_the_desktop_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "soundfile", None)  # not installed
    code, err = cli_error(capsys, "--vad", "--url", f"ws://127.0.0.1:{free_port()}", WAV)
    assert code == cli.EXIT_USAGE
    assert "--mic and --vad need the desktop extra: pip install 'tingxie[desktop]'" in err


def test_a_missing_token_is_not_called_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TINGXIE_TOKEN", raising=False)
    proc, port = spawn_fake_server("--token", TOKEN)
    url = f"ws://127.0.0.1:{port}"
    try:
        code, err = cli_error(capsys, "--url", url, "--fast", WAV)
        assert code == cli.EXIT_AUTH
        assert "needs a token and none was sent" in err and "refused" not in err
        assert "give it with --token or TINGXIE_TOKEN" in err
        code, err = cli_error(capsys, "--url", url, "--token", "wrong-token", "--fast", WAV)
        assert code == cli.EXIT_AUTH and "refused the token" in err and "check --token" in err
        none = check_remote(url, "")  # the first-run dialog's check
        assert none is not None and none.code == "remote_needs_token"
        wrong = check_remote(url, "wrong-token")
        assert wrong is not None and wrong.code == "remote_refused_token"
    finally:
        proc.terminate()
        proc.wait(10)


def test_help_shows_the_pace_default_once() -> None:
    text = cli.build_parser().format_help()
    realtime = next(line for line in text.splitlines() if "--realtime" in line)
    assert "--fast" in text
    fast = text[text.index("  --fast") : text.index("--chunk-ms")]
    assert "default" not in fast  # was "(default: True)", next to --realtime's
    assert "(default: True)" in text[text.index(realtime) : text.index("  --fast")]
    assert cli.build_parser().parse_args([WAV]).realtime is True
    assert cli.build_parser().parse_args(["--fast", WAV]).realtime is False


# ---------------------------------------------------------------- tingxie-server


def option_help(help_text: str) -> dict[str, str]:
    """Each option of ``--help`` output and its description, the default left out."""
    described: dict[str, str] = {}
    for block in re.split(r"\n(?=  -)", help_text):
        if not block.startswith("  -"):
            continue
        signature, _, rest = block.strip().partition("  ")
        text = re.sub(r"\(default: [^)]*\)", "", " ".join(rest.split())).strip()
        described[signature.split()[0].rstrip(",")] = text
    return described


def test_every_server_option_says_what_it_does() -> None:
    described = option_help(server_parser().format_help())
    assert {"--max-connections", "--log-level", "--port"} <= described.keys()
    assert [option for option, text in described.items() if not text] == []


class FailingGenerator(FakeGenerator):
    async def load(self) -> None:
        raise RuntimeError("no torch here")


async def test_a_start_while_the_model_failed_says_it_in_words(start) -> None:  # type: ignore[no-untyped-def]
    server = await start(FullDecodeEngine(FailingGenerator()))
    await server.wait_loaded()
    async with await ServerLink.open(server.url) as link:
        await link.start("u1")
        error = await asyncio.wait_for(anext(link.messages()), 10)
    assert error.code.value == "not_ready"  # type: ignore[union-attr]
    assert error.message == "the model failed to load: RuntimeError: no torch here"  # type: ignore[union-attr]
