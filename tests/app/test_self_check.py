"""``tingxie --self-check`` from source: every step against a real server process, and a
failure named by its step. (tests/packaging runs the same check in the built app.)"""

from __future__ import annotations

import os
import subprocess
import sys

from desktop.selfcheck import StepResult, format_report, run_steps
from tests.conftest import free_port, spawn_fake_server

APP = [sys.executable, "-m", "desktop.app"]
STEPS = ["resources", "vad", "modules", "ui"]


def app_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    return {**env, "QT_QPA_PLATFORM": "offscreen", **extra}


def self_check(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*APP, "--self-check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=app_env(**env),
    )


def step_lines(stdout: str) -> dict[str, str]:
    lines = [line.split(maxsplit=2) for line in stdout.splitlines() if line[:4] in ("ok  ", "FAIL")]
    return {name: status for status, name, _ in lines}


def test_passes_with_a_round_trip_to_a_real_server() -> None:
    server, port = spawn_fake_server()
    try:
        out = self_check("--server", f"ws://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(10)
    assert out.returncode == 0, out.stdout + out.stderr
    assert step_lines(out.stdout) == dict.fromkeys([*STEPS, "server"], "ok")
    assert "final '" in out.stdout and out.stdout.rstrip().endswith("self-check passed")


def test_a_refused_token_fails_the_server_step_only() -> None:
    server, port = spawn_fake_server(env={**app_env(), "TINGXIE_TOKEN": "right-token"})
    try:
        refused = self_check("--server", f"ws://127.0.0.1:{port}", TINGXIE_TOKEN="wrong-token")
        accepted = self_check("--server", f"ws://127.0.0.1:{port}", TINGXIE_TOKEN="right-token")
    finally:
        server.terminate()
        server.wait(10)
    assert refused.returncode == 1
    assert step_lines(refused.stdout) == {**dict.fromkeys(STEPS, "ok"), "server": "FAIL"}
    assert "AuthFailed" in refused.stdout
    assert refused.stdout.rstrip().endswith("self-check failed: server")
    assert accepted.returncode == 0, accepted.stdout


def test_no_server_listening_is_a_failure_not_a_hang() -> None:
    out = self_check("--server", f"ws://127.0.0.1:{free_port()}")
    assert out.returncode == 1
    assert step_lines(out.stdout)["server"] == "FAIL" and "ServerUnreachable" in out.stdout


def test_every_step_runs_and_each_failure_is_named() -> None:
    def broken() -> str:
        raise FileNotFoundError("icons/tingxie.ico")

    results = run_steps([("first", lambda: "fine"), ("second", broken), ("third", lambda: "x")])
    assert [(r.name, r.ok) for r in results] == [
        ("first", True),
        ("second", False),
        ("third", True),
    ]
    assert results[1].detail == "FileNotFoundError: icons/tingxie.ico"
    report = format_report(results)
    assert report.splitlines()[1].startswith("FAIL second")
    assert report.endswith("self-check failed: second")
    assert format_report([StepResult("only", True, "d", 0.001)]).endswith("self-check passed")
