"""tingxie-server and tingxie-cli as a user runs them: separate processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from protocol.version import __version__
from tests.conftest import CLI, SERVER, Recording, free_port
from tests.server.helpers import fake_final


@pytest.mark.parametrize("command", [SERVER, CLI])
def test_help_and_version(command: list[str], subprocess_env) -> None:
    out = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, env=subprocess_env
    )
    assert out.returncode == 0 and __version__ in out.stdout
    out = subprocess.run([*command, "--help"], capture_output=True, text=True, env=subprocess_env)
    assert out.returncode == 0 and "usage:" in out.stdout


def test_cli_json_streams_files_and_prints_timestamped_events(
    server_process, recordings: list[Recording], subprocess_env
) -> None:
    _, port = server_process
    files = [r for r in recordings if r.id in ("ps_cards_001", "ps_0880")]
    out = subprocess.run(
        [*CLI, "--url", f"ws://127.0.0.1:{port}", "--json", *[str(r.path) for r in files]],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[0]["type"] == "ready"
    finals = [e for e in events if e["type"] == "final"]
    assert [f["text"] for f in finals] == [fake_final(r) for r in files]
    assert any(e["type"] == "partial" for e in events)  # paced in real time by default
    times = [e["t"] for e in events]
    assert times == sorted(times)
    stop = next(e for e in events if e["type"] == "stop" and e["id"] == finals[1]["id"])
    assert finals[1]["t"] >= stop["t"]


def test_cli_errors_are_clear(subprocess_env, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    wav = Path(__file__).parents[1] / "data" / "speech" / "ps_cards_001.wav"
    out = subprocess.run(
        [*CLI, "--url", f"ws://127.0.0.1:{port}", str(wav)],
        capture_output=True,
        text=True,
        env=subprocess_env,
    )
    assert out.returncode == 3 and "is tingxie-server running?" in out.stderr
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    out = subprocess.run([*CLI, str(bad)], capture_output=True, text=True, env=subprocess_env)
    assert out.returncode == 2 and "not a PCM WAV file" in out.stderr


def test_public_bind_without_token_is_refused(subprocess_env) -> None:
    out = subprocess.run(
        [*SERVER, "--engine", "fake", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=30,
    )
    assert out.returncode == 2 and "--token" in out.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_pending_finals_then_exits(
    server_process, recordings: list[Recording], subprocess_env, signum: int
) -> None:
    proc, port = server_process
    recording = next(r for r in recordings if r.id == "ps_cards_001")
    cli = subprocess.Popen(
        [*CLI, "--url", f"ws://127.0.0.1:{port}", "--json", "--fast", str(recording.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env,
    )
    # Wait until the stop is sent; the final then takes >= 400 ms (fake batch cost).
    assert cli.stdout is not None
    for line in cli.stdout:
        if json.loads(line)["type"] == "stop":
            break
    proc.send_signal(signum)
    rest = cli.stdout.read()
    cli.wait(20)
    finals = [json.loads(line) for line in rest.splitlines() if '"final"' in line]
    assert [f["text"] for f in finals] == [fake_final(recording)]
    assert cli.returncode == 0
    assert proc.wait(20) == 0
    log = proc.stdout.read() if proc.stdout else ""
    assert "shutting down" in log and re.search(r"stopped", log)


def test_environment_configures_and_flags_win(subprocess_env) -> None:
    env = {**subprocess_env, "TINGXIE_PORT": "not-a-port"}
    out = subprocess.run([*SERVER, "--engine", "fake"], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "TINGXIE_PORT='not-a-port'" in out.stderr
    assert os.environ.get("TINGXIE_PORT") is None


def test_bad_model_path_is_a_clear_error(subprocess_env, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    out = subprocess.run(
        [*SERVER, "--engine", "qwen", "--model", str(missing)],
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=60,
    )
    assert out.returncode == 2
    assert str(missing) in out.stderr and "cannot listen" not in out.stderr
