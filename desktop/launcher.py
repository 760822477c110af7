"""Starting and watching the ASR server from the tray app.

On Windows the server runs in WSL2 and is started through ``wsl.exe``; on Linux the
same code runs the command directly. Processes are started through a
:class:`ProcessRunner`, so the launcher's logic is tested with real processes here and
the Windows side stays a thin, unit-tested command line.
"""

from __future__ import annotations

import collections
import enum
import json
import logging
import os
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

WSL_EXE = "wsl.exe"


# ---------------------------------------------------------------- pure parts


def build_server_command(
    launcher: str, server_command: str, wsl_distro: str = "", windows: bool | None = None
) -> list[str]:
    """The argv that starts the server.

    ``exec`` makes the server the WSL session's main process, so stopping ``wsl.exe``
    stops it; ``bash -lc`` reads the login profile where users put their venv/conda.
    """
    if not server_command.strip():
        raise ValueError("the server command is empty")
    if launcher == "wsl":
        argv = [WSL_EXE]
        if wsl_distro:
            argv += ["-d", wsl_distro]
        return [*argv, "--", "bash", "-lc", f"exec {server_command}"]
    if launcher == "direct":
        posix = (os.name != "nt") if windows is None else not windows
        return shlex.split(server_command, posix=posix)
    raise ValueError(f"unknown launcher {launcher!r}")


def build_wsl_stop_command(wsl_distro: str = "") -> list[str]:
    """Asks the server inside WSL to shut down cleanly (SIGINT finishes open finals)."""
    argv = [WSL_EXE] + (["-d", wsl_distro] if wsl_distro else [])
    return [*argv, "--", "pkill", "-INT", "-f", "tingxie-server"]


def parse_wsl_distros(output: bytes) -> list[str]:
    """Distro names from ``wsl.exe -l -q``, which writes UTF-16LE (often with NULs)."""
    if output.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in output:
        text = output.decode("utf-16-le", errors="replace").lstrip("\ufeff")
    else:
        text = output.decode("utf-8", errors="replace")
    return [line.strip().strip("\x00") for line in text.splitlines() if line.strip("\x00 \r")]


def health_url(server_url: str) -> str:
    """``ws://host:port/...`` → ``http://host:port/healthz``."""
    parts = urlsplit(server_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}/healthz"


@dataclass
class RestartPolicy:
    """Restart a crashed server at most ``max_restarts`` times per ``window_s``."""

    max_restarts: int = 3
    window_s: float = 300.0
    _restarts: list[float] = field(default_factory=list)

    def allow(self, now: float) -> bool:
        self._restarts = [t for t in self._restarts if now - t < self.window_s]
        if len(self._restarts) >= self.max_restarts:
            return False
        self._restarts.append(now)
        return True


class LauncherState(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"  # process up, not answering /healthz yet
    LOADING = "loading"  # /healthz answers, model loading
    READY = "ready"
    FAILED = "failed"  # model failed to load, or crashed too often
    CRASHED = "crashed"  # exited unexpectedly; restarting


# ---------------------------------------------------------------- processes


class ProcessHandle(Protocol):
    pid: int

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


class ProcessRunner(Protocol):
    def start(self, argv: Sequence[str], on_line: Callable[[str], None]) -> ProcessHandle: ...
    def run(self, argv: Sequence[str], timeout: float) -> int: ...


class SubprocessRunner:
    """Real processes; output lines are read on a thread and handed to ``on_line``."""

    def start(self, argv: Sequence[str], on_line: Callable[[str], None]) -> ProcessHandle:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window on Windows
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            creationflags=flags,
        )

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                on_line(line.rstrip("\n"))

        threading.Thread(target=pump, name="server-log", daemon=True).start()
        return proc

    def run(self, argv: Sequence[str], timeout: float) -> int:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            return subprocess.run(
                list(argv), timeout=timeout, capture_output=True, creationflags=flags
            ).returncode
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("%s failed: %s", argv[0], exc)
            return -1


# ---------------------------------------------------------------- the launcher


def probe_health(url: str, timeout: float = 2.0) -> dict[str, object] | None:
    """The server's /healthz body (200 or 503), or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: dict[str, object] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as err:
        try:
            body = json.loads(err.read())
            return body
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


class ServerLauncher:
    """Starts the server, watches it until ready, restarts it after a crash.

    ``on_state(state, detail)`` is called from the watcher thread.
    """

    def __init__(
        self,
        runner: ProcessRunner,
        on_state: Callable[[LauncherState, str], None],
        *,
        poll_s: float = 0.5,
        restart_policy: RestartPolicy | None = None,
        log_lines: int = 2000,
    ) -> None:
        self._runner = runner
        self._on_state = on_state
        self._poll_s = poll_s
        self._policy = restart_policy or RestartPolicy()
        self._log: collections.deque[str] = collections.deque(maxlen=log_lines)
        self._lock = threading.Lock()
        self._proc: ProcessHandle | None = None
        self._argv: list[str] = []
        self._stop_argv: list[str] | None = None
        self._health_url = ""
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.state = LauncherState.STOPPED
        self.detail = ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self._log)

    def _append_log(self, line: str) -> None:
        with self._lock:
            self._log.append(line)

    def _set(self, state: LauncherState, detail: str = "") -> None:
        if state is self.state and detail == self.detail:
            return
        self.state, self.detail = state, detail
        log.info("server launcher: %s %s", state.value, detail)
        try:
            self._on_state(state, detail)
        except Exception:
            log.exception("launcher state callback failed")

    def start(
        self, argv: Sequence[str], server_url: str, stop_argv: Sequence[str] | None = None
    ) -> None:
        """Start the server (no-op if already running)."""
        if self.running:
            return
        self._argv = list(argv)
        self._stop_argv = list(stop_argv) if stop_argv else None
        self._health_url = health_url(server_url)
        self._stopping.clear()
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="server-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        self._append_log(f"$ {shlex.join(self._argv)}")
        self._set(LauncherState.STARTING, "starting the server")
        try:
            self._proc = self._runner.start(self._argv, self._append_log)
        except OSError as exc:
            self._proc = None
            self._set(LauncherState.FAILED, f"cannot start {self._argv[0]}: {exc}")

    def _watch(self) -> None:
        started = time.monotonic()
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            code = proc.poll()
            if code is not None:
                if self._stopping.is_set():
                    break
                tail = "; ".join(list(self._log)[-3:])
                if self._policy.allow(time.monotonic()):
                    self._set(
                        LauncherState.CRASHED,
                        f"server exited with code {code}; restarting ({tail})",
                    )
                    self._spawn()
                    started = time.monotonic()
                    continue
                self._set(
                    LauncherState.FAILED,
                    f"server exited with code {code} again; not restarting ({tail})",
                )
                return
            body = probe_health(self._health_url, timeout=min(2.0, self._poll_s * 4))
            if body is None:
                self._set(
                    LauncherState.STARTING,
                    f"waiting for the server ({time.monotonic() - started:.0f} s)",
                )
            elif body.get("model_state") == "ready":
                self._set(LauncherState.READY, str(body.get("model", "")))
            elif body.get("model_state") == "failed":
                self._set(LauncherState.FAILED, f"model failed to load: {body.get('model_error')}")
            else:
                self._set(
                    LauncherState.LOADING,
                    f"loading {body.get('model', 'the model')} "
                    f"({time.monotonic() - started:.0f} s)",
                )
            self._stopping.wait(self._poll_s)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server we started: ask it to finish cleanly, then insist."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            if self._stop_argv:
                self._runner.run(self._stop_argv, timeout=10)
            else:
                proc.terminate()  # SIGTERM: the server finishes open finals
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("server did not stop within %.0f s; killing it", timeout)
                proc.kill()
                proc.wait(5)
        if self._watcher is not None:
            self._watcher.join(5)
        self._proc = None
        self._set(LauncherState.STOPPED, "")
