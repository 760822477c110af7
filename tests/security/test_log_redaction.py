"""What people say, their audio and their token stay out of the logs, even at DEBUG,
unless transcript logging is switched on for debugging (the token never appears)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from websockets.frames import Frame, Opcode

from protocol.log_redaction import (
    REDACTED,
    TRANSCRIPTS_ENV,
    WireLogRedactor,
    redact_url,
    redact_wire_record,
    text_for_log,
)
from tests.conftest import CLI, SERVER, Recording, free_port, wait_healthy
from tests.security.conftest import ROOT, clean_env
from tests.server.helpers import fake_final

TOKEN = "log-test-token-Zq81xv0mBf"
AUDIO_HEX = re.compile(r"BINARY (?:[0-9a-f]{2} ){4}")  # how websockets shows audio bytes


# ---------------------------------------------------------------- the pure parts


def test_data_frames_lose_their_payload_unless_content_is_logged() -> None:
    text = Frame(Opcode.TEXT, b'{"type": "final", "text": "secret words"}')
    audio = Frame(Opcode.BINARY, bytes(range(16)))
    for frame in (text, audio):
        msg, args = redact_wire_record("> %s", (frame,), log_content=False)
        line = msg % args  # type: ignore[operator]
        assert REDACTED in line and f"[{len(frame.data)} bytes]" in line
        assert "secret" not in line and "00 01 02" not in line
        assert redact_wire_record("> %s", (frame,), log_content=True) == ("> %s", (frame,))
    ping = Frame(Opcode.PING, b"\x01\x02")
    assert redact_wire_record("< %s", (ping,), log_content=False) == ("< %s", (ping,))


def test_secret_headers_and_query_tokens_are_always_hidden() -> None:
    for log_content in (False, True):
        _, args = redact_wire_record("< %s: %s", ("Authorization", "Bearer abc"), log_content)
        assert args == ("Authorization", REDACTED)
        _, args = redact_wire_record("< %s %s %s", ("GET", "/?token=abc&x=1", "HTTP/1.1"), True)
        assert args == ("GET", f"/?token={REDACTED}&x=1", "HTTP/1.1")
        _, args = redact_wire_record("> GET %s HTTP/1.1", ("/ws?token=abc",), log_content)
        assert args == (f"/ws?token={REDACTED}",)
    assert redact_wire_record("< %s: %s", ("Host", "h:1"), False) == ("< %s: %s", ("Host", "h:1"))


def test_redact_url() -> None:
    assert redact_url("wss://h:1/p?token=abc") == f"wss://h:1/p?token={REDACTED}"
    assert redact_url("ws://h:1/?a=b") == "ws://h:1/?a=b"
    assert redact_url("ws://h:1") == "ws://h:1"


def test_text_for_log() -> None:
    assert text_for_log("你好 world", reveal=False) == "<8 chars>"
    assert text_for_log("你好 world", reveal=True) == "'你好 world'"


def test_redactor_passes_the_record_on(caplog: pytest.LogCaptureFixture) -> None:
    logger = WireLogRedactor(logging.getLogger("tests.wire"), log_content=False)
    with caplog.at_level(logging.DEBUG, logger="tests.wire"):
        logger.debug("> %s", Frame(Opcode.TEXT, b"hello there"))
        logger.debug("> %s: %s", "Authorization", "Bearer abc")
    assert caplog.messages == [f"> TEXT {REDACTED} [11 bytes]", f"> Authorization: {REDACTED}"]


# ---------------------------------------------------------------- real processes


@dataclass
class Run:
    server_log: str
    client_log: str
    final: str


def dictate_through_processes(rec: Recording, tmp_path: Path, log_transcripts: bool) -> Run:
    """tingxie-server at DEBUG and tingxie-cli -v (DEBUG) dictating one recording."""
    port = free_port()
    server_log = tmp_path / f"server-{log_transcripts}.log"
    extra = ["--log-transcripts"] if log_transcripts else []
    env = clean_env()
    server_args = ["--engine", "fake", "--port", str(port), "--log-level", "DEBUG"]
    url = f"ws://127.0.0.1:{port}"
    with open(server_log, "wb") as sink:
        server = subprocess.Popen(
            [*SERVER, *server_args, "--token", TOKEN, *extra],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(port)
            client_env = {**env, TRANSCRIPTS_ENV: "1"} if log_transcripts else env
            out = subprocess.run(
                [*CLI, "-v", "--fast", "--json", "--url", url, "--token", TOKEN, str(rec.path)],
                capture_output=True,
                text=True,
                env=client_env,
                cwd=ROOT,
                timeout=60,
            )
        finally:
            server.terminate()
            server.wait(10)
    assert out.returncode == 0, out.stderr
    finals = [e["text"] for e in map(json.loads, out.stdout.splitlines()) if e["type"] == "final"]
    assert len(finals) == 1
    return Run(server_log.read_text(), out.stderr, finals[0])


def words_in(text: str, log: str) -> list[str]:
    return [w for w in set(text.split()) if re.search(rf"\b{re.escape(w)}\b", log)]


def test_debug_logs_of_server_and_client_hold_no_transcript_audio_or_token(
    recordings: list[Recording], tmp_path: Path
) -> None:
    rec = next(r for r in recordings if r.id == "ps_0870")
    run = dictate_through_processes(rec, tmp_path, log_transcripts=False)
    assert run.final == fake_final(rec) and len(run.final.split()) >= 5
    for name, log in (("server", run.server_log), ("client", run.client_log)):
        # The logs are at DEBUG and show the frames and headers, without their content.
        assert "BINARY [redacted]" in log and "TEXT [redacted]" in log, name
        assert "Authorization: [redacted]" in log, name
        assert words_in(run.final, log) == [], name
        assert '"text"' not in log and not AUDIO_HEX.search(log), name
        assert TOKEN not in log, name


def test_transcript_logging_when_switched_on_still_hides_the_token(
    recordings: list[Recording], tmp_path: Path
) -> None:
    rec = next(r for r in recordings if r.id == "ps_0870")
    run = dictate_through_processes(rec, tmp_path, log_transcripts=True)
    first_words = " ".join(run.final.split()[:2])
    for name, log in (("server", run.server_log), ("client", run.client_log)):
        assert f'"text": "{first_words}' in log, name
        assert AUDIO_HEX.search(log), name
        assert TOKEN not in log and "Authorization: [redacted]" in log, name


# ---------------------------------------------------------------- the tray app's path


@pytest.mark.parametrize("log_transcripts", [False, True])
def test_tray_dictation_logs_no_transcript_unless_switched_on(
    qtbot,
    recordings: list[Recording],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    log_transcripts: bool,
) -> None:
    """Coordinator + VAD + streaming client against a server, everything at DEBUG."""
    from desktop.audio.source import ArraySource
    from desktop.audio.vad import SileroVad
    from desktop.coordinator import Coordinator, HistoryEntry
    from desktop.settings import Settings
    from tests.conftest import spawn_fake_server

    if log_transcripts:
        monkeypatch.setenv(TRANSCRIPTS_ENV, "1")
    else:
        monkeypatch.delenv(TRANSCRIPTS_ENV, raising=False)
    server, port = spawn_fake_server("--token", TOKEN, env=clean_env())
    rec = next(r for r in recordings if r.id == "ps_0880")
    silence = np.zeros(16000, np.int16)
    audio = np.concatenate([silence, np.frombuffer(rec.pcm(), "<i2"), silence])
    settings = replace(
        Settings(), server_url=f"ws://127.0.0.1:{port}", token=TOKEN, mode="hands_free"
    )
    caplog.set_level(logging.DEBUG)
    coordinator = Coordinator(
        settings, _NoTyping(), lambda s: ArraySource(audio, realtime=False), SileroVad
    )
    finals: list[HistoryEntry] = []
    coordinator.final.connect(finals.append)
    coordinator.start()
    try:
        coordinator.toggle_dictation()
        qtbot.waitUntil(lambda: len(finals) == 1, timeout=20_000)
    finally:
        coordinator.shutdown()
        server.terminate()
        server.wait(10)
    text = finals[0].text
    assert len(text.split()) >= 2
    log = caplog.text
    assert TOKEN not in log and "Authorization: [redacted]" in log
    if log_transcripts:
        assert repr(text) in log  # the coordinator's "final N: '...'" line
        assert '"text": "' in log  # frame payloads
    else:
        assert f"<{len(text)} chars>" in log and "TEXT [redacted]" in log
        assert words_in(text, log) == [] and '"text"' not in log


class _NoTyping:
    def type_final(self, text: str) -> None:
        pass
