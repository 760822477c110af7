"""Server launcher: real processes on Linux; the wsl.exe side as command lines."""

from __future__ import annotations

import queue
import sys
import time

from desktop.launcher import (
    LauncherState,
    RestartPolicy,
    ServerLauncher,
    SubprocessRunner,
    build_server_command,
    build_wsl_stop_command,
    health_url,
    parse_wsl_distros,
)
from tests.conftest import free_port


def test_wsl_command_lines() -> None:
    assert build_server_command("wsl", "tingxie-server --model /m", "Ubuntu-24.04") == [
        "wsl.exe",
        "-d",
        "Ubuntu-24.04",
        "--exec",
        "bash",
        "-lc",
        'mkdir -p "$HOME/.local/share/tingxie" && echo $$ > "$HOME/.local/share/tingxie/server.pid"'
        " && exec tingxie-server --model /m",
    ]
    assert build_server_command("wsl", "tingxie-server")[:2] == ["wsl.exe", "--exec"]
    assert build_wsl_stop_command("Debian") == [
        "wsl.exe",
        "-d",
        "Debian",
        "--exec",
        "bash",
        "-c",
        'pid=$(cat "$HOME/.local/share/tingxie/server.pid" 2>/dev/null)'
        ' && grep -qa tingxie "/proc/$pid/cmdline" && kill -INT "$pid"',
    ]
    assert build_server_command("direct", "tingxie-server --port 9 --context 'a b'") == [
        "tingxie-server",
        "--port",
        "9",
        "--context",
        "a b",
    ]


def test_parse_wsl_distros_utf16_output() -> None:
    raw = "Ubuntu-24.04\r\ndocker-desktop\r\n\r\n".encode("utf-16-le")
    assert parse_wsl_distros(b"\xff\xfe" + raw) == ["Ubuntu-24.04", "docker-desktop"]
    assert parse_wsl_distros(raw) == ["Ubuntu-24.04", "docker-desktop"]
    assert parse_wsl_distros(b"Ubuntu\n") == ["Ubuntu"]
    assert parse_wsl_distros(b"") == []


def test_health_url() -> None:
    assert health_url("ws://127.0.0.1:8765") == "http://127.0.0.1:8765/healthz"
    assert health_url("wss://asr.example:443/x") == "https://asr.example:443/healthz"


def test_restart_policy_limits_restarts_per_window() -> None:
    policy = RestartPolicy(max_restarts=2, window_s=10)
    assert policy.allow(0.0) and policy.allow(1.0)
    assert not policy.allow(2.0)
    assert policy.allow(11.5)


def collect_states() -> tuple[queue.Queue[tuple[LauncherState, str]], object]:
    states: queue.Queue[tuple[LauncherState, str]] = queue.Queue()
    return states, lambda s, d: states.put((s, d))


def wait_state(states, wanted: LauncherState, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            state, detail = states.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(state)
        if state is wanted:
            return detail
    raise AssertionError(f"never reached {wanted}; saw {seen}")


def test_starts_real_server_until_ready_and_stops_it() -> None:
    port = free_port()
    states, on_state = collect_states()
    launcher = ServerLauncher(SubprocessRunner(), on_state, poll_s=0.1)  # type: ignore[arg-type]
    argv = [sys.executable, "-m", "server", "--engine", "fake", "--port", str(port)]
    launcher.start(argv, f"ws://127.0.0.1:{port}")
    try:
        assert "fake" in wait_state(states, LauncherState.READY)
        assert launcher.running
    finally:
        launcher.stop()
    assert not launcher.running and launcher.state is LauncherState.STOPPED
    log = launcher.log_text()
    assert "listening on" in log and "stopped" in log  # clean SIGTERM shutdown


def test_crashed_server_is_restarted_then_given_up() -> None:
    states, on_state = collect_states()
    launcher = ServerLauncher(
        SubprocessRunner(),
        on_state,
        poll_s=0.05,  # type: ignore[arg-type]
        restart_policy=RestartPolicy(max_restarts=2, window_s=60),
    )
    crash = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
    launcher.start(crash, "ws://127.0.0.1:9")
    try:
        detail = wait_state(states, LauncherState.CRASHED)
        assert "code 3" in detail and "restarting" in detail
        detail = wait_state(states, LauncherState.FAILED)
        assert "not restarting" in detail and "boom" in detail
    finally:
        launcher.stop()


def test_missing_executable_is_a_clear_failure() -> None:
    states, on_state = collect_states()
    launcher = ServerLauncher(SubprocessRunner(), on_state)  # type: ignore[arg-type]
    launcher.start(["/nonexistent/wsl.exe", "--"], "ws://127.0.0.1:9")
    assert "cannot start /nonexistent/wsl.exe" in wait_state(states, LauncherState.FAILED, 5)
    launcher.stop()
