"""Server launcher: real processes on Linux; the wsl.exe side as command lines."""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from desktop.launcher import (
    ChildJob,
    Launcher,
    LauncherState,
    ProcessHandle,
    RestartPolicy,
    ServerLauncher,
    SubprocessRunner,
    app_child_job,
    build_server_command,
    build_wsl_stop_command,
    decode_console_output,
    health_url,
    parse_wsl_distros,
    probe_health,
    process_environment,
    server_environment,
    wsl_serve_script,
)
from desktop.loopback import is_loopback_url, websocket_proxy
from desktop.win32.wsl_distros import list_distros
from tests.conftest import free_port, spawn_fake_server, wait_healthy


def test_wsl_command_lines() -> None:
    argv = build_server_command(Launcher.WSL, "tingxie-server --model '/m x'", "Ubuntu-24.04")
    assert argv[:6] == ["wsl.exe", "-d", "Ubuntu-24.04", "--exec", "bash", "-lc"]
    script = argv[6]
    assert script == wsl_serve_script(["tingxie-server", "--model", "/m x"])
    assert "tingxie-server --model '/m x' </dev/null 3<&- &" in script  # one word each
    assert build_server_command(Launcher.WSL, "tingxie-server")[:2] == ["wsl.exe", "--exec"]
    assert build_wsl_stop_command("Debian") == [
        "wsl.exe",
        "-d",
        "Debian",
        "--exec",
        "bash",
        "-c",
        'pid=$(cat "$HOME/.local/share/tingxie/server.pid" 2>/dev/null)'
        ' && grep -qa tingxie "/proc/$pid/cmdline" && kill -TERM "$pid"',
    ]
    assert build_server_command(Launcher.DIRECT, "tingxie-server --port 9 --context 'a b'") == [
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
        launcher.stop(wait=True)
    assert not launcher.running and launcher.state is LauncherState.STOPPED
    log = launcher.log_text()
    assert "listening on" in log and "stopped" in log  # clean SIGTERM shutdown


def test_a_directly_started_server_ends_when_the_app_is_gone() -> None:
    """The app holds the server's stdin open; when the app dies the pipe closes and the
    server shuts down cleanly instead of keeping the port (and the GPU)."""
    port = free_port()
    argv = [sys.executable, "-m", "server", "--engine", "fake", "--port", str(port)]
    lines: list[str] = []
    handle = SubprocessRunner().start(
        argv, lines.append, server_environment("", Launcher.DIRECT), keep_input=True
    )
    try:
        wait_healthy(port)
        handle.close_input()  # what the OS does for a crashed app
        assert handle.wait(20) == 0, lines
    finally:
        if handle.poll() is None:
            handle.kill()
            handle.wait(10)
    assert any("stopped" in line for line in lines), lines


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
        assert not launcher.running
    finally:
        launcher.stop(wait=True)


def test_missing_executable_is_a_clear_failure() -> None:
    states, on_state = collect_states()
    launcher = ServerLauncher(SubprocessRunner(), on_state)  # type: ignore[arg-type]
    launcher.start(["/nonexistent/wsl.exe", "--"], "ws://127.0.0.1:9")
    assert "cannot start /nonexistent/wsl.exe" in wait_state(states, LauncherState.FAILED, 5)
    launcher.stop(wait=True)


# ---------------------------------------------------------------- wsl.exe: WSL_UTF8, stderr apart

PROXY_WARNING = (
    "wsl: A localhost proxy configuration was detected but not mirrored into WSL. "
    "WSL in NAT mode does not support localhost proxies.\r\n"
)


def test_every_wsl_exe_call_gets_wsl_utf8_and_nothing_else_changes() -> None:
    inherited = {"PATH": "/bin", "WSLENV": "FOO/u"}
    for program in ("wsl.exe", "WSL.EXE", "wsl", r"C:\Windows\System32\wsl.exe"):
        env = process_environment([program, "--status"], None, inherited)
        assert env == {"PATH": "/bin", "WSLENV": "FOO/u", "WSL_UTF8": "1"}, program
    token = process_environment(["wsl.exe"], {"TINGXIE_TOKEN": "t", "WSLENV": "TINGXIE_TOKEN"}, {})
    assert token == {"TINGXIE_TOKEN": "t", "WSLENV": "TINGXIE_TOKEN", "WSL_UTF8": "1"}
    assert process_environment(["python3", "-V"], None, inherited) is None  # inherited as is
    assert process_environment(["/opt/wsl.exe.d/python"], {"A": "1"}, {}) == {"A": "1"}


@pytest.fixture
def fake_wsl_exe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``wsl.exe`` first on PATH that behaves like the real one behind a localhost
    proxy: the warning in UTF-16LE on stderr, the Linux program's UTF-8 on stdout (and
    what WSL_UTF8 it was given)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    program = folder / "wsl.exe"
    program.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"sys.stderr.buffer.write({PROXY_WARNING!r}.encode('utf-16-le'))\n"
        "sys.stderr.buffer.flush()\n"
        "sys.stdout.buffer.write(('/home/用户\\nWSL_UTF8=' + os.environ.get('WSL_UTF8', '-')"
        " + '\\n').encode())\n"
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return program


def test_capture_decodes_a_utf16_warning_and_utf8_output_apart(fake_wsl_exe: Path) -> None:
    done = SubprocessRunner().capture(["wsl.exe", "--cd", "~", "--exec", "pwd"], timeout=30)
    assert done.returncode == 0
    assert done.out_text.splitlines() == ["/home/用户", "WSL_UTF8=1"]
    assert decode_console_output(done.errors) == PROXY_WARNING
    assert done.text.splitlines() == ["/home/用户", "WSL_UTF8=1", PROXY_WARNING.strip()]


def test_streamed_lines_of_both_streams_arrive_decoded(fake_wsl_exe: Path) -> None:
    lines: list[str] = []
    handle = SubprocessRunner().start(["wsl.exe", "--exec", "pwd"], lines.append)
    assert handle.wait(30) == 0
    assert sorted(lines) == sorted(["/home/用户", "WSL_UTF8=1", PROXY_WARNING.strip()])


def test_the_distribution_list_is_read_with_wsl_utf8(fake_wsl_exe: Path) -> None:
    """wsl.exe -l -q for the settings dialog goes through the same runner (WSL_UTF8=1;
    the stand-in prints what it was given as a second line)."""
    assert list_distros(SubprocessRunner()) == ["/home/用户", "WSL_UTF8=1"]


def test_no_wsl_exe_means_no_distributions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert list_distros(SubprocessRunner()) == []


# ---------------------------------------------------------------- the Job object (Windows)


class FakeJobApi:
    """Records the Win32 calls a ChildJob makes."""

    def __init__(self, fail_assign: bool = False) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.fail_assign = fail_assign

    def create_kill_on_close_job(self) -> int:
        self.calls.append(("create",))
        return 77

    def assign(self, job: int, pid: int) -> None:
        self.calls.append(("assign", job, pid))
        if self.fail_assign:
            raise PermissionError(5, "Access is denied")

    def close(self, handle: int) -> None:
        self.calls.append(("close", handle))


def test_child_job_is_made_once_and_every_started_process_joins_it() -> None:
    api = FakeJobApi()
    job = ChildJob(api)
    runner = SubprocessRunner(job)
    first = runner.start([sys.executable, "-c", "pass"], lambda line: None)
    second = runner.start([sys.executable, "-c", "pass"], lambda line: None)
    assert first.wait(30) == 0 and second.wait(30) == 0
    assert api.calls == [("create",), ("assign", 77, first.pid), ("assign", 77, second.pid)]
    job.close()
    job.close()  # once only
    assert api.calls[-1] == ("close", 77) and api.calls.count(("close", 77)) == 1


def test_a_process_that_cannot_join_the_job_still_runs() -> None:
    api = FakeJobApi(fail_assign=True)
    assert ChildJob(api).adopt(1234) is False
    assert api.calls == [("create",), ("assign", 77, 1234)]


def test_no_job_object_off_windows() -> None:
    assert app_child_job() is None  # sys.platform is not win32 here


# ---------------------------------------------------------------- the server script in WSL

STAND_IN = (
    "#!/usr/bin/env bash\n"
    "# a tingxie-server stand-in: notes SIGTERM in $1, or exits with code $2\n"
    "trap 'echo TERM > \"$1\"; exit 0' TERM\n"
    'if [ -n "$2" ]; then exit "$2"; fi\n'
    "while true; do sleep 0.05; done\n"
)


def stand_in(tmp_path: Path) -> Path:
    server = tmp_path / "bin" / "tingxie-server"
    server.parent.mkdir(exist_ok=True)
    server.write_text(STAND_IN)
    server.chmod(0o755)
    return server


def inside_wsl(argv: list[str]) -> list[str]:
    """What WSL runs: the words after ``--exec``."""
    return argv[argv.index("--exec") + 1 :]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_wsl_script_stops_the_server_when_its_stdin_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's end (Quit, a crash, the Job object killing wsl.exe) closes the script's
    stdin; the script then sends the server SIGTERM and ends with its exit code."""
    server = stand_in(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    argv = inside_wsl(build_server_command(Launcher.WSL, f"{server} {tmp_path / 'signal'}"))
    lines: list[str] = []
    handle = SubprocessRunner().start(argv, lines.append, keep_input=True)
    pidfile = tmp_path / "home" / ".local" / "share" / "tingxie" / "server.pid"
    try:
        wait_for(pidfile.exists)
        wait_for(lambda: pidfile.read_text().strip().isdigit())
        server_pid = int(pidfile.read_text())
        assert server_pid != handle.pid  # the server runs under the script
        time.sleep(0.2)  # let the stand-in set its trap
        assert handle.poll() is None
        handle.close_input()
        assert handle.wait(10) == 0
        assert (tmp_path / "signal").read_text() == "TERM\n"
        assert not pidfile.exists()  # its own note is cleaned up
        assert not Path(f"/proc/{server_pid}").exists()
    finally:
        if handle.poll() is None:
            handle.kill()
            handle.wait(5)


def test_the_wsl_script_ends_with_the_server_and_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = stand_in(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    argv = inside_wsl(build_server_command(Launcher.WSL, f"{server} {tmp_path / 'signal'} 3"))
    handle = SubprocessRunner().start(argv, lambda line: None, keep_input=True)
    try:
        assert handle.wait(10) == 3  # stdin still open: the watcher does not hold it up
    finally:
        if handle.poll() is None:
            handle.kill()
    assert not (tmp_path / "signal").exists()


# ---------------------------------------------------------------- a server already on the port


class NoStartRunner(SubprocessRunner):
    def __init__(self) -> None:
        super().__init__()
        self.started: list[list[str]] = []
        self.handles: list[ProcessHandle] = []
        self.ran: list[list[str]] = []

    def start(self, argv, on_line, env=None, keep_input=False):  # type: ignore[no-untyped-def]
        self.started.append(list(argv))
        self.handles.append(super().start(argv, on_line, env, keep_input))
        return self.handles[-1]

    def run(self, argv, timeout):  # type: ignore[no-untyped-def]
        self.ran.append(list(argv))
        return super().run(argv, timeout)


def test_a_tingxie_server_not_started_here_is_adopted_and_left_running() -> None:
    proc, port = spawn_fake_server()
    try:
        states, on_state = collect_states()
        runner = NoStartRunner()
        launcher = ServerLauncher(runner, on_state, poll_s=0.05)  # type: ignore[arg-type]
        crash = [sys.executable, "-c", "raise SystemExit(9)"]
        launcher.start(crash, f"ws://127.0.0.1:{port}")
        assert "already running" in wait_state(states, LauncherState.READY, 10)
        assert launcher.adopted and launcher.running
        assert runner.started == []  # no second server fighting for the port
        assert "did not start it and will not stop it" in launcher.log_text()
        launcher.stop(wait=True)
        assert launcher.state is LauncherState.STOPPED and not launcher.running
        assert proc.poll() is None  # still serving its own users
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_earlier_server_of_this_app_is_stopped_and_replaced(tmp_path: Path) -> None:
    """The stop command (in WSL: SIGTERM to the pidfile's server) ends the old one; ours
    starts in its place, and is later stopped the same way."""
    old, port = spawn_fake_server()
    pidfile = tmp_path / "server.pid"
    pidfile.write_text(str(old.pid))
    states, on_state = collect_states()
    runner = NoStartRunner()
    launcher = ServerLauncher(
        runner,  # type: ignore[arg-type]
        on_state,
        poll_s=0.05,
        input_grace_s=0.2,  # this stand-in server does not watch its stdin
    )
    stop_noted = [
        sys.executable,
        "-c",
        f"import os, signal; os.kill(int(open({str(pidfile)!r}).read()), signal.SIGTERM)",
    ]
    ours = [sys.executable, "-m", "server", "--engine", "fake", "--port", str(port)]
    try:
        launcher.start(ours, f"ws://127.0.0.1:{port}", stop_argv=stop_noted)
        wait_state(states, LauncherState.READY, 30)
        assert old.wait(10) == 0  # cleanly stopped
        assert runner.ran == [stop_noted] and runner.started == [ours]
        assert not launcher.adopted
        assert "stopping the one this app started earlier" in launcher.log_text()
        pidfile.write_text(str(runner.handles[0].pid))
    finally:
        launcher.stop(wait=True)
        if old.poll() is None:
            old.kill()
    assert runner.handles[0].poll() == 0  # SIGTERM: a clean shutdown
    assert runner.ran == [stop_noted, stop_noted]


def test_a_server_that_is_shutting_down_is_waited_for_not_adopted() -> None:
    """Stop, then Start at once: the old server still answers, saying it shuts down."""
    answers = [
        {"server": "tingxie/0", "model_state": "ready", "shutting_down": True},
        {"server": "tingxie/0", "model_state": "ready", "shutting_down": True},
        None,
    ]

    def probe(url: str, timeout: float, context: object) -> dict[str, object] | None:
        return answers.pop(0) if answers else None

    runner = NoStartRunner()
    launcher = ServerLauncher(runner, lambda s, d: None, poll_s=0.05, probe=probe)  # type: ignore[arg-type]
    quiet = [sys.executable, "-c", "import time; time.sleep(30)"]
    launcher.start(quiet, "ws://127.0.0.1:9")
    try:
        wait_for(lambda: runner.started == [quiet])
        assert not launcher.adopted and answers == []
        assert runner.ran == []  # no stop command: it was leaving already
    finally:
        launcher.stop(wait=True)


def test_start_right_after_stop_leaves_one_watcher() -> None:
    """Stop (which does not wait) then Start at once: the first run's watcher ends, and
    only the new one watches (two would both restart a crashed server)."""
    import threading

    def watchers() -> int:
        return sum(t.name == "server-watch" and t.is_alive() for t in threading.enumerate())

    before = watchers()
    launcher = ServerLauncher(SubprocessRunner(), lambda s, d: None, poll_s=0.05)
    server = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    launcher.start(server, f"ws://127.0.0.1:{free_port()}")
    try:
        wait_for(lambda: "up" in launcher.log_text())
        launcher.stop()
        launcher.start(server, f"ws://127.0.0.1:{free_port()}")
        wait_for(lambda: watchers() == before + 1)
        time.sleep(0.3)  # several poll intervals: the old one did not come back
        assert watchers() == before + 1 and launcher.running
    finally:
        launcher.stop(wait=True)
    wait_for(lambda: watchers() == before)


def test_stop_returns_at_once_and_the_server_still_ends() -> None:
    """Quit must not wait for the server: stop() asks, a thread waits."""
    port = free_port()
    states, on_state = collect_states()
    launcher = ServerLauncher(SubprocessRunner(), on_state, poll_s=0.05)  # type: ignore[arg-type]
    # A server that takes 2 s to finish after SIGTERM.
    slow = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(2), sys.exit(0)))\n"
        "print('up', os.getpid(), flush=True)\n"
        "while True: time.sleep(0.05)\n"
    )
    launcher.start([sys.executable, "-c", slow], f"ws://127.0.0.1:{port}")
    wait_for(lambda: "up " in launcher.log_text())
    pid = int(launcher.log_text().split("up ", 1)[1].split()[0])
    began = time.monotonic()
    launcher.stop()
    assert time.monotonic() - began < 1.5  # did not wait for the server's 2 s exit
    assert launcher.state is LauncherState.STOPPED and not launcher.running
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=15)  # reaped by the thread
    assert wait_state(states, LauncherState.STOPPED, 1) == ""


# ---------------------------------------------------------------- loopback without proxies


def dead_system_proxy(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every proxy variable points at a port where nothing listens (a local proxy tool
    that is not running): traffic that goes through it fails."""
    proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy)
        monkeypatch.setenv(name.upper(), proxy)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return proxy


def test_loopback_urls_are_told_apart() -> None:
    for url in ("ws://127.0.0.1:8765", "ws://localhost:1", "wss://[::1]:9", "http://127.9.0.1/"):
        assert is_loopback_url(url) and websocket_proxy(url) is None, url
    for url in ("ws://192.168.1.20:8765", "wss://asr.example", "ws://[::ffff:10.0.0.1]:1", "x"):
        assert not is_loopback_url(url) and websocket_proxy(url) is True, url


def test_health_checks_and_the_link_to_a_local_server_skip_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import urllib.request

    from desktop.client import ServerLink

    proc, port = spawn_fake_server()
    try:
        dead_system_proxy(monkeypatch)
        with pytest.raises(OSError):  # what a default opener does now
            urllib.request.build_opener().open(f"http://127.0.0.1:{port}/healthz", timeout=5)
        body = probe_health(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert body is not None and body["model_state"] == "ready"

        async def connect() -> str:
            link = await ServerLink.open(f"ws://127.0.0.1:{port}", timeout_s=5)
            await link.close()
            return link.ready.engine

        assert asyncio.run(connect()) == "full-decode"  # the fake engine answered
    finally:
        proc.terminate()
        proc.wait(10)
