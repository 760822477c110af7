"""TLS: a real server process serves wss:// and https://; clients that trust its CA get
exact finals, clients that do not are refused with a message, not a traceback."""

from __future__ import annotations

import json
import os
import queue
import shutil
import ssl
import subprocess
import threading
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trustme

from desktop.cli import EXIT_TLS
from desktop.client import ServerLink, ServerUnreachable, TlsError
from desktop.streaming import ClientEvent, ClientState, DictationClient, FinalText, StateChanged
from protocol.messages import Final
from server.app import main as server_main
from tests.conftest import CLI, Recording
from tests.security.conftest import ROOT, TlsFiles, TlsServer, clean_env
from tests.security.helpers import next_event, submit_recording
from tests.server.helpers import fake_final

SHORT = "ps_0880"  # 3 s


def recording(recordings: list[Recording], rid: str = SHORT) -> Recording:
    return next(r for r in recordings if r.id == rid)


async def dictate(link: ServerLink, rec: Recording) -> str:
    await link.start("tls-1")
    pcm = rec.pcm()
    for offset in range(0, len(pcm), 3200):
        await link.send_audio(pcm[offset : offset + 3200])
    await link.stop("tls-1")
    async for message in link.messages():
        if isinstance(message, Final):
            return message.text
    raise AssertionError("connection closed before the final")


def test_healthz_is_served_over_https(tls_server: TlsServer) -> None:
    context = ssl.create_default_context(cafile=str(tls_server.files.ca))
    url = f"https://127.0.0.1:{tls_server.port}/healthz"
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        assert response.status == 200
        assert json.loads(response.read())["model_state"] == "ready"


async def test_server_link_trusting_the_ca_gets_the_exact_final(
    tls_server: TlsServer, recordings: list[Recording]
) -> None:
    rec = recording(recordings)
    async with await ServerLink.open(tls_server.url, ca_file=str(tls_server.files.ca)) as link:
        assert link.ready.model_state == "ready"
        assert await dictate(link, rec) == fake_final(rec)


async def test_server_link_without_the_ca_is_refused_with_a_clear_error(
    tls_server: TlsServer,
) -> None:
    with pytest.raises(TlsError) as info:
        await ServerLink.open(tls_server.url)
    message = str(info.value)
    assert "not trusted" in message and "certificate verify failed" in message
    assert "CA file" in message


async def test_plain_ws_url_to_a_tls_server_suggests_wss(tls_server: TlsServer) -> None:
    with pytest.raises(ServerUnreachable, match="must start with wss://"):
        await ServerLink.open(f"ws://127.0.0.1:{tls_server.port}")


async def test_wss_url_to_a_plain_server_suggests_ws(start) -> None:
    server = await start()
    with pytest.raises(ServerUnreachable, match="must start with ws://"):
        await ServerLink.open(f"wss://127.0.0.1:{server.port}")


async def test_unreadable_ca_file_is_named(tls_server: TlsServer, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TlsError, match=f"cannot load the CA file {missing}"):
        await ServerLink.open(tls_server.url, ca_file=str(missing))


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_dictation_client_over_wss(
    tls_server: TlsServer,
    recordings: list[Recording],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    rec = recording(recordings)
    events: queue.Queue[ClientEvent] = queue.Queue()
    ca = str(tls_server.files.ca)
    if how == "environment":  # what the tray app has until its settings hold a CA file
        monkeypatch.setenv("TINGXIE_CA_FILE", ca)
        client = DictationClient(tls_server.url, events.put)
    else:
        client = DictationClient(tls_server.url, events.put, ca_file=ca)
    client.start()
    try:
        submit_recording(client, rec)
        final = next_event(events, FinalText)
        assert isinstance(final, FinalText) and final.text == fake_final(rec)
    finally:
        client.close()


def test_dictation_client_without_the_ca_reports_the_untrusted_certificate(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TINGXIE_CA_FILE", raising=False)
    events: queue.Queue[ClientEvent] = queue.Queue()
    client = DictationClient(tls_server.url, events.put)
    client.start()
    try:
        while True:
            event = next_event(events, StateChanged)
            assert isinstance(event, StateChanged)
            if event.state is not ClientState.CONNECTING:
                break
        assert event.state is ClientState.UNREACHABLE
        assert "certificate verify failed" in event.detail
    finally:
        client.close()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--fast", "--json", *args],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        cwd=ROOT,
        timeout=60,
    )


def finals_of(stdout: str) -> list[str]:
    events = [json.loads(line) for line in stdout.splitlines()]
    return [e["text"] for e in events if e["type"] == "final"]


def test_cli_with_ca_file_flag_and_env(tls_server: TlsServer, recordings: list[Recording]) -> None:
    rec = recording(recordings)
    ca = str(tls_server.files.ca)
    out = run_cli("--url", tls_server.url, "--ca-file", ca, str(rec.path))
    assert out.returncode == 0, out.stderr
    assert finals_of(out.stdout) == [fake_final(rec)]
    env = {**clean_env(), "TINGXIE_URL": tls_server.url, "TINGXIE_CA_FILE": ca}
    out = run_cli(str(rec.path), env=env)
    assert out.returncode == 0, out.stderr
    assert finals_of(out.stdout) == [fake_final(rec)]


def test_cli_without_the_ca_explains_instead_of_crashing(
    tls_server: TlsServer, recordings: list[Recording]
) -> None:
    out = run_cli("--url", tls_server.url, str(recording(recordings).path))
    assert out.returncode == EXIT_TLS
    assert "certificate verify failed" in out.stderr and "--ca-file" in out.stderr
    assert "Traceback" not in out.stderr
    assert finals_of(out.stdout) == []


# ---------------------------------------------------------------- server start-up errors


@pytest.fixture
def no_tingxie_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("TINGXIE_")]:
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_tingxie_env")
def test_missing_or_bad_certificate_files_exit_2_naming_the_file(
    tls_files: TlsFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    other_key = tmp_path / "other.key"
    other_key.write_bytes(trustme.CA().issue_cert("127.0.0.1").private_key_pem.bytes())
    cases = [
        (["--tls-cert", str(missing)], f"--tls-cert {missing}: no such file"),
        (["--tls-cert", str(tls_files.cert), "--tls-key", str(missing)], "no such file"),
        (["--tls-cert", str(garbage)], "cannot load"),
        (["--tls-cert", str(tls_files.cert), "--tls-key", str(other_key)], "KEY_VALUES_MISMATCH"),
        (["--tls-key", str(tls_files.key)], "--tls-key needs --tls-cert"),
    ]
    for flags, expected in cases:
        assert server_main(["--engine", "fake", "--port", "0", *flags]) == 2, flags
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (flags, err)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_self_signed_certificate_made_as_docs_say_can_be_trusted_directly(
    start, tmp_path: Path, recordings: list[Recording]
) -> None:
    """docs/security.md's openssl recipe: the server certificate is its own CA file."""
    cert, key = tmp_path / "tingxie.pem", tmp_path / "tingxie.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "825", "-subj", "/CN=tingxie",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = await start(tls_cert=str(cert), tls_key=str(key))
    assert server.url.startswith("wss://")
    rec = recording(recordings)
    async with await ServerLink.open(server.url, ca_file=str(cert)) as link:
        assert await dictate(link, rec) == fake_final(rec)
    with pytest.raises(TlsError, match="certificate verify failed"):
        await ServerLink.open(server.url)


def test_tray_coordinator_trusts_the_ca_file_setting(
    qtbot: object, tls_server: TlsServer, recordings: list[Recording]
) -> None:
    """The settings' ``ca_file`` reaches the tray app's client: hands-free dictation over
    wss:// types the exact final."""
    from desktop.audio.source import ArraySource
    from desktop.audio.vad import SileroVad
    from desktop.coordinator import Coordinator, HistoryEntry
    from desktop.settings import Settings

    rec = recording(recordings)
    silence = np.zeros(16000, np.int16)
    audio = np.concatenate([silence, np.frombuffer(rec.pcm(), "<i2"), silence, silence])
    settings = replace(
        Settings(), server_url=tls_server.url, ca_file=str(tls_server.files.ca), mode="hands_free"
    )
    typed: list[str] = []
    finals: list[HistoryEntry] = []
    coordinator = Coordinator(
        settings,
        type("Typer", (), {"type_final": lambda self, text: typed.append(text)})(),
        lambda s: ArraySource(audio, realtime=False),
        SileroVad,
    )
    coordinator.final.connect(finals.append)
    coordinator.start()
    try:
        coordinator.toggle_dictation()
        qtbot.waitUntil(lambda: len(finals) == 1, timeout=30_000)  # type: ignore[attr-defined]
    finally:
        coordinator.shutdown()
    assert typed == [finals[0].text] and typed[0]


def test_launcher_watches_a_wss_server_with_the_ca_file(tls_server: TlsServer) -> None:
    """The server launcher's /healthz watch trusts the same CA file as the client; without
    it a private-CA server would never show as ready."""
    from desktop.client import client_tls_context
    from desktop.launcher import health_url, probe_health

    url = health_url(tls_server.url)
    assert url.startswith("https://")
    body = probe_health(url, context=client_tls_context(tls_server.url, str(tls_server.files.ca)))
    assert body is not None and body["model_state"] == "ready"
    assert probe_health(url) is None  # the system's CAs do not know the private CA


def test_launcher_with_an_unreadable_ca_file_fails_with_its_name(tmp_path: Path) -> None:
    """A CA file that is gone is a FAILED launcher state naming it, not a dead watcher."""
    from desktop.launcher import LauncherState, ServerLauncher

    states: list[tuple[LauncherState, str]] = []
    no_runner: Any = None  # never reached: the CA file is checked before anything starts
    launcher = ServerLauncher(no_runner, lambda state, detail: states.append((state, detail)))
    missing = tmp_path / "gone.pem"
    launcher.start(["tingxie-server"], "wss://127.0.0.1:9", ca_file=str(missing))
    assert launcher.state is LauncherState.FAILED and not launcher.running
    assert states and str(missing) in states[-1][1]


def test_first_run_remote_check_trusts_the_certificate_given_there(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first-run setup's remote choice takes a certificate file for a private CA,
    checks the wss:// server with it, and saves it for the app."""
    from desktop.setup.steps import (
        Outcome,
        PathKind,
        SetupChoice,
        StepContext,
        build_steps,
        check_remote,
    )

    monkeypatch.delenv("TINGXIE_CA_FILE", raising=False)
    ca = str(tls_server.files.ca)
    untrusted = check_remote(tls_server.url, "", timeout_s=5)
    assert untrusted is not None and "not trusted" in untrusted.message + untrusted.detail
    assert check_remote(tls_server.url, "", ca_file=ca) is None

    no_launcher: Any = None  # the remote choice starts nothing
    (connect,) = build_steps(
        SetupChoice(PathKind.REMOTE, remote_url=tls_server.url, ca_file=ca), no_launcher
    )
    ctx = StepContext(no_launcher, threading.Event(), lambda *_: None, print, Outcome())
    connect.action(ctx)
    assert ctx.outcome.settings is not None and ctx.outcome.settings["ca_file"] == ca
