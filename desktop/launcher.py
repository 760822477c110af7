"""Starting and watching the ASR server from the tray app.

On Windows the server runs in WSL2 and is started through ``wsl.exe``; on Linux the
same code runs the command directly. Processes are started through a
:class:`ProcessRunner`, so the launcher's logic is tested with real processes here and
the Windows side stays a thin, unit-tested command line.
"""

from __future__ import annotations

import codecs
import collections
import enum
import io
import json
import logging
import os
import re
import shlex
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from desktop.client import TlsError, client_tls_context

log = logging.getLogger(__name__)

WSL_EXE = "wsl.exe"


# ---------------------------------------------------------------- pure parts

_SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def posix_quote(word: str) -> str:
    """One word for a POSIX shell, whatever it contains.

    Like :func:`shlex.quote`, but a single quote becomes ``'\\''`` rather than
    ``'"'"'``: the script then carries no double quote of its own, so the Windows
    command line that wraps it (:func:`subprocess.list2cmdline`) only has to escape the
    double quotes that were in the data.
    """
    if _SAFE_WORD.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def login_shell_script(argv: Sequence[str]) -> str:
    """``exec`` + the words of ``argv``, each quoted, for ``bash -lc``.

    Every word stays one argument: no variable, command substitution, glob or ``;`` in
    a setting can run anything. Two forms keep their shell meaning, because users write
    them in the server command: a leading ``~/`` (the home folder) and leading
    ``NAME=value`` words (run through ``env``).
    """
    if not argv:
        raise ValueError("the server command is empty")
    words: list[str] = []
    for word in argv:
        if word == "~":
            words.append("~")
        elif word.startswith("~/"):
            words.append("~/" + posix_quote(word[2:]) if word[2:] else "~/")
        else:
            words.append(posix_quote(word))
    if _ASSIGNMENT.match(argv[0]):
        words.insert(0, "env")
    return "exec " + " ".join(words)


def split_command_line(text: str, windows: bool) -> list[str]:
    """A command line typed in the settings → argv (POSIX rules, or Windows paths).

    Windows paths keep their backslashes; their surrounding double quotes are removed
    (``shlex`` in non-POSIX mode keeps them, which would put the quotes into argv).
    """
    try:
        words = shlex.split(text, posix=not windows)
    except ValueError as exc:  # "No closing quotation"
        raise ValueError(f"the server command cannot be read: {exc}") from None
    if windows:
        words = [w[1:-1] if len(w) >= 2 and w[0] == w[-1] == '"' else w for w in words]
    if not words:
        raise ValueError("the server command is empty")
    return words


def join_command_line(argv: Sequence[str], windows: bool) -> str:
    """The inverse of :func:`split_command_line`, for commands the app writes itself."""
    return subprocess.list2cmdline(list(argv)) if windows else shlex.join(argv)


def wsl_prefix(wsl_distro: str = "") -> list[str]:
    return [WSL_EXE, "-d", wsl_distro] if wsl_distro else [WSL_EXE]


def build_wsl_exec(argv: Sequence[str], wsl_distro: str = "", cwd: str = "") -> list[str]:
    """Run ``argv`` inside WSL as it is.

    ``--exec`` matters: after ``--`` wsl.exe joins the words into one string for the
    user's default Linux shell, which parses ``$``, backquotes and quotes a second
    time; ``--exec`` hands the words to the program unchanged.
    """
    where = ["--cd", cwd] if cwd else []
    return [*wsl_prefix(wsl_distro), *where, "--exec", *argv]


#: Where a server started in WSL notes its process id, so that stopping it signals that
#: server only, not every tingxie server of the user. A constant: no setting goes in.
WSL_PIDFILE = "$HOME/.local/share/tingxie/server.pid"
_NOTE_PID = f'mkdir -p "$HOME/.local/share/tingxie" && echo $$ > "{WSL_PIDFILE}" && '
# SIGINT lets the server finish open finals. The cmdline check keeps a stale file whose
# process id now belongs to another program from signalling it.
_STOP_NOTED_PID = (
    f'pid=$(cat "{WSL_PIDFILE}" 2>/dev/null) && grep -qa tingxie "/proc/$pid/cmdline" '
    '&& kill -INT "$pid"'
)


def build_server_command(
    launcher: str, server_command: str, wsl_distro: str = "", windows: bool | None = None
) -> list[str]:
    """The argv that starts the server.

    In WSL the command runs as ``bash -lc '… exec …'``: ``bash -l`` reads the login
    profile (PATH, CUDA), ``exec`` makes the server the WSL session's main process, so
    stopping ``wsl.exe`` stops it, after noting its process id in :data:`WSL_PIDFILE`.
    The command is read as words, never as shell code.
    """
    if not server_command.strip():
        raise ValueError("the server command is empty")
    if launcher == "wsl":
        argv = split_command_line(server_command, windows=False)  # a Linux command line
        return build_wsl_exec(["bash", "-lc", _NOTE_PID + login_shell_script(argv)], wsl_distro)
    if launcher == "direct":
        on_windows = (os.name == "nt") if windows is None else windows
        return split_command_line(server_command, windows=on_windows)
    raise ValueError(f"unknown launcher {launcher!r}")


def build_wsl_stop_command(wsl_distro: str = "") -> list[str]:
    """Asks the server started by :func:`build_server_command` inside WSL to shut down
    cleanly (SIGINT finishes open finals); other tingxie servers are left alone."""
    return build_wsl_exec(["bash", "-c", _STOP_NOTED_PID], wsl_distro)


def server_environment(token: str, launcher: str, inherited_wslenv: str = "") -> dict[str, str]:
    """Variables that hand the token to a server started from here.

    The token travels in ``TINGXIE_TOKEN``, never on the command line (where ``ps``
    and the server log would show it). ``WSLENV`` tells wsl.exe to pass it into WSL.
    """
    if not token:
        return {}
    env = {"TINGXIE_TOKEN": token}
    if launcher == "wsl":
        names = [n for n in inherited_wslenv.split(":") if n]
        if "TINGXIE_TOKEN" not in names:
            names.append("TINGXIE_TOKEN")
        env["WSLENV"] = ":".join(names)
    return env


def redact_argv(argv: Sequence[str]) -> list[str]:
    """argv for logs: the value after ``--token`` (or in ``--token=…``) is hidden."""
    shown: list[str] = []
    hide_next = False
    for word in argv:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif word == "--token":
            shown.append(word)
            hide_next = True
        elif word.startswith("--token="):
            shown.append("--token=***")
        else:
            shown.append(word)
    return shown


def _looks_utf16le(data: bytes) -> bool:
    """wsl.exe writes UTF-16LE without a BOM. UTF-8 text never holds a NUL byte, while
    UTF-16 has one in every ASCII character and in every line break."""
    return data.startswith(b"\xff\xfe") or b"\x00" in data


def decode_console_output(data: bytes) -> str:
    """Text of a console program's output: UTF-16LE (wsl.exe) or UTF-8 (Linux)."""
    if _looks_utf16le(data):
        return data.decode("utf-16-le", errors="replace").lstrip("\ufeff")
    return data.decode("utf-8", errors="replace")


class ConsoleDecoder:
    """Splits a stream of output bytes into text lines, UTF-16LE or UTF-8.

    The encoding is chosen once, from the bytes up to the first line break: a stream
    comes either from wsl.exe itself (UTF-16LE) or from a Linux program (UTF-8).
    """

    def __init__(self) -> None:
        self._pending = b""
        self._decoder: codecs.IncrementalDecoder | None = None
        self._text = ""

    def _choose(self) -> None:
        encoding = "utf-16-le" if _looks_utf16le(self._pending) else "utf-8"
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        data, self._pending = self._pending, b""
        self._text += self._decoder.decode(data)

    def _lines(self) -> list[str]:
        *lines, self._text = self._text.split("\n")
        return [line.rstrip("\r").lstrip("\ufeff") for line in lines]

    def feed(self, data: bytes) -> list[str]:
        if self._decoder is None:
            self._pending += data
            if b"\n" not in self._pending and len(self._pending) < 256:
                return []
            self._choose()
        else:
            self._text += self._decoder.decode(data)
        return self._lines()

    def close(self) -> list[str]:
        """The lines still held, including a last one without a line break."""
        if self._decoder is None:
            self._choose()
        assert self._decoder is not None
        self._text += self._decoder.decode(b"", final=True)
        lines = self._lines()
        last, self._text = self._text.rstrip("\r").lstrip("\ufeff"), ""
        return [*lines, last] if last else lines


def parse_wsl_distros(output: bytes) -> list[str]:
    """Distro names from ``wsl.exe -l -q``, which writes UTF-16LE (often with NULs)."""
    text = decode_console_output(output)
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


@dataclass(frozen=True)
class Captured:
    """What a short command printed (stdout and stderr together, as raw bytes)."""

    returncode: int
    output: bytes
    launch_error: str = ""  # the program could not be started, or ran out of time

    @property
    def text(self) -> str:
        return decode_console_output(self.output)


class ProcessRunner(Protocol):
    def start(
        self,
        argv: Sequence[str],
        on_line: Callable[[str], None],
        env: Mapping[str, str] | None = None,
    ) -> ProcessHandle: ...
    def run(self, argv: Sequence[str], timeout: float) -> int: ...
    def capture(self, argv: Sequence[str], timeout: float) -> Captured: ...


def _child_environment(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if not extra:
        return None
    return {**os.environ, **extra}


class _RunningProcess:
    """A started process whose ``wait`` returns only after its last line was handed on
    (so a caller that reads the output after the exit sees all of it)."""

    def __init__(self, proc: subprocess.Popen[bytes], reader: threading.Thread) -> None:
        self._proc = proc
        self._reader = reader
        self.pid = proc.pid

    def poll(self) -> int | None:
        return self._proc.poll()

    def terminate(self) -> None:
        self._proc.terminate()

    def kill(self) -> None:
        self._proc.kill()

    def wait(self, timeout: float | None = None) -> int:
        code = self._proc.wait(timeout)
        self._reader.join(5.0)  # the pipe closes when the process (and its children) end
        return code


class SubprocessRunner:
    """Real processes; output lines are read on a thread and handed to ``on_line``."""

    def start(
        self,
        argv: Sequence[str],
        on_line: Callable[[str], None],
        env: Mapping[str, str] | None = None,
    ) -> ProcessHandle:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window on Windows
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_child_environment(env),
            creationflags=flags,
        )

        def pump() -> None:
            stream = proc.stdout
            assert isinstance(stream, io.BufferedReader)  # Popen's default buffering
            decoder = ConsoleDecoder()
            while chunk := stream.read1(65536):  # whatever arrived, without waiting for more
                for line in decoder.feed(chunk):
                    on_line(line)
            for line in decoder.close():
                on_line(line)

        reader = threading.Thread(target=pump, name="process-output", daemon=True)
        reader.start()
        return _RunningProcess(proc, reader)

    def run(self, argv: Sequence[str], timeout: float) -> int:
        return self.capture(argv, timeout).returncode

    def capture(self, argv: Sequence[str], timeout: float) -> Captured:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            done = subprocess.run(
                list(argv),
                timeout=timeout,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                creationflags=flags,
            )
        except OSError as exc:
            log.info("cannot run %s: %s", argv[0], exc)
            return Captured(-1, b"", f"cannot run {argv[0]}: {exc.strerror or exc}")
        except subprocess.TimeoutExpired as exc:
            log.warning("%s did not finish within %.0f s", argv[0], timeout)
            partial = exc.output if isinstance(exc.output, bytes) else b""
            return Captured(-1, partial, f"{argv[0]} did not finish within {timeout:.0f} s")
        return Captured(done.returncode, done.stdout)


# ---------------------------------------------------------------- the launcher


def probe_health(
    url: str, timeout: float = 2.0, context: ssl.SSLContext | None = None
) -> dict[str, object] | None:
    """The server's /healthz body (200 or 503), or None if nothing answers.

    ``context``: for https, the TLS context the dictation client uses for the same
    server (it may trust a private CA)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
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
        self._env: dict[str, str] = {}
        self._stop_argv: list[str] | None = None
        self._health_url = ""
        self._tls: ssl.SSLContext | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.state = LauncherState.STOPPED
        self.detail = ""

    @property
    def argv(self) -> list[str]:
        """The command of the server started last (empty before the first start)."""
        return list(self._argv)

    @property
    def env(self) -> dict[str, str]:
        """The variables the server started last was given."""
        return dict(self._env)

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
        self,
        argv: Sequence[str],
        server_url: str,
        stop_argv: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        ca_file: str | None = None,
    ) -> None:
        """Start the server (no-op if already running); ``env`` adds to the environment;
        ``ca_file`` is trusted when watching a ``wss://`` server's /healthz."""
        if self.running:
            return
        try:
            self._tls = client_tls_context(server_url, ca_file)
        except TlsError as exc:  # an unreadable CA file: the client could not connect either
            self._set(LauncherState.FAILED, str(exc))
            return
        self._argv = list(argv)
        self._env = dict(env or {})
        self._stop_argv = list(stop_argv) if stop_argv else None
        self._health_url = health_url(server_url)
        self._stopping.clear()
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="server-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        self._append_log(f"$ {shlex.join(redact_argv(self._argv))}")
        self._set(LauncherState.STARTING, "starting the server")
        try:
            self._proc = self._runner.start(self._argv, self._append_log, self._env or None)
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
            body = probe_health(
                self._health_url, timeout=min(2.0, self._poll_s * 4), context=self._tls
            )
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
