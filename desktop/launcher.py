"""Starting and watching the ASR server from the tray app.

On Windows the server runs in WSL2 and is started through ``wsl.exe``; on Linux the
same code runs the command directly. Processes are started through a
:class:`ProcessRunner`, so the launcher's logic is tested with real processes here and
the Windows side stays a thin, unit-tested command line.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import enum
import io
import json
import logging
import os
import re
import shlex
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PureWindowsPath
from typing import Protocol
from urllib.parse import urlsplit

from desktop.client import TlsError, client_tls_context
from desktop.loopback import opener_for
from desktop.settings import Launcher

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


def shell_words(argv: Sequence[str]) -> str:
    """The words of ``argv`` as one POSIX command, each word quoted.

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
    return " ".join(words)


def login_shell_script(argv: Sequence[str]) -> str:
    """``exec`` + the words of ``argv``, each quoted, for ``bash -lc`` (see
    :func:`shell_words`)."""
    return "exec " + shell_words(argv)


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
# SIGTERM lets the server finish open finals (SIGINT would not do: bash starts the server
# in the background, and background commands of a script ignore SIGINT). The cmdline
# check keeps a stale file whose process id now belongs to another program from
# signalling it.
_STOP_NOTED_PID = (
    f'pid=$(cat "{WSL_PIDFILE}" 2>/dev/null) && grep -qa tingxie "/proc/$pid/cmdline" '
    '&& kill -TERM "$pid"'
)


def wsl_serve_script(argv: Sequence[str]) -> str:
    """The bash script that runs the server inside WSL and stops it when the app is gone.

    Killing wsl.exe does not end the Linux processes it started, so the script watches
    its stdin, which the app holds open: end of file (Quit, a crash, End Task, the Job
    object killing wsl.exe) sends the server SIGTERM, as do HUP, INT and TERM to the
    script.
    The server's process id goes to :data:`WSL_PIDFILE` (the stop command and the next
    start read it). The script ends with the server's exit code.
    """
    return (
        'dir="$HOME/.local/share/tingxie" && mkdir -p "$dir" || exit 1; '
        f"{shell_words(argv)} </dev/null 3<&- & pid=$!; "
        'echo "$pid" > "$dir/server.pid"; '
        'stop() { kill -TERM "$pid" 2>/dev/null; }; trap stop HUP INT TERM; '
        # bash gives a background list /dev/null as stdin: the watcher reads a copy (fd 3)
        "exec 3<&0; (while read -r -u 3 _; do :; done; stop) & watcher=$!; exec 3<&-; "
        'wait "$pid"; code=$?; '
        'while kill -0 "$pid" 2>/dev/null; do wait "$pid"; code=$?; done; '  # after a trap
        'kill "$watcher" 2>/dev/null; '
        '[ "$(cat "$dir/server.pid" 2>/dev/null)" = "$pid" ] && rm -f "$dir/server.pid"; '
        'exit "$code"'
    )


def build_server_command(
    launcher: Launcher, server_command: str, wsl_distro: str = "", windows: bool | None = None
) -> list[str]:
    """The argv that starts the server.

    In WSL the command runs under :func:`wsl_serve_script` through ``bash -lc``:
    ``bash -l`` reads the login profile (PATH, CUDA). Start it with ``keep_input`` so
    the script can tell when the app is gone. The command is read as words, never as
    shell code.
    """
    if not server_command.strip():
        raise ValueError("the server command is empty")
    if launcher is Launcher.WSL:
        argv = split_command_line(server_command, windows=False)  # a Linux command line
        return build_wsl_exec(["bash", "-lc", wsl_serve_script(argv)], wsl_distro)
    if launcher is Launcher.DIRECT:
        on_windows = (os.name == "nt") if windows is None else windows
        return split_command_line(server_command, windows=on_windows)
    # an untyped caller's "wsl" must not quietly start the command here
    raise ValueError(f"unknown launcher {launcher!r}")


def build_wsl_stop_command(wsl_distro: str = "") -> list[str]:
    """Asks the server started by :func:`build_server_command` inside WSL to shut down
    cleanly (SIGTERM finishes open finals); other tingxie servers are left alone."""
    return build_wsl_exec(["bash", "-c", _STOP_NOTED_PID], wsl_distro)


#: A server the app starts stays up after a failed model load, so that /healthz can say
#: why (in a terminal it exits with code 1 and says what to do instead).
STAY_UP_ON_LOAD_FAILURE = {"TINGXIE_KEEP_SERVING_ON_LOAD_FAILURE": "1"}
#: A server started directly (not in WSL) stops when the stdin the app holds open ends.
STOP_WITH_THE_APP = {"TINGXIE_STOP_ON_STDIN_EOF": "1"}


def server_environment(
    token: str, launcher: Launcher, inherited_wslenv: str = ""
) -> dict[str, str]:
    """Variables for a server started from here: the token, the stay-up flag and, for a
    direct child, stop-on-stdin-EOF.

    The token travels in ``TINGXIE_TOKEN``, never on the command line (where ``ps``
    and the server log would show it). ``WSLENV`` tells wsl.exe to pass them into WSL.
    """
    env = dict(STAY_UP_ON_LOAD_FAILURE)
    if token:
        env["TINGXIE_TOKEN"] = token
    if launcher is Launcher.DIRECT:
        # The server is our child and reads the stdin we hold open: it ends with the app,
        # even after a crash. (In WSL the serve script watches stdin instead and gives the
        # server /dev/null, which this would read as the app gone.)
        env.update(STOP_WITH_THE_APP)
    if launcher is Launcher.WSL:
        names = [n for n in inherited_wslenv.split(":") if n]
        names += [name for name in env if name not in names]
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
    def close_input(self) -> None:
        """Close the process's stdin (started with ``keep_input``): its end-of-file is
        how a server in WSL learns that the app is gone."""


@dataclass(frozen=True)
class Captured:
    """What a short command printed, stdout and stderr apart (raw bytes).

    Kept apart because each stream has its own encoding: wsl.exe writes its warnings
    (say, about a localhost proxy) in UTF-16LE on stderr while the Linux program it runs
    writes UTF-8 on stdout; decoded together, one would garble the other.
    """

    returncode: int
    output: bytes
    launch_error: str = ""  # the program could not be started, or ran out of time
    errors: bytes = b""  # stderr

    @property
    def out_text(self) -> str:
        """stdout only: what the program answered."""
        return decode_console_output(self.output)

    @property
    def text(self) -> str:
        """stdout, then stderr, each decoded on its own (for reading failures)."""
        parts = (decode_console_output(self.output), decode_console_output(self.errors))
        return "\n".join(part.rstrip("\r\n") for part in parts if part.strip())


class ProcessRunner(Protocol):
    def start(
        self,
        argv: Sequence[str],
        on_line: Callable[[str], None],
        env: Mapping[str, str] | None = None,
        keep_input: bool = False,
    ) -> ProcessHandle: ...
    def run(self, argv: Sequence[str], timeout: float) -> int: ...
    def capture(self, argv: Sequence[str], timeout: float) -> Captured: ...


def is_wsl_exe(program: str) -> bool:
    """``wsl.exe`` however it is named (``wsl``, ``C:\\Windows\\System32\\wsl.exe``)."""
    name = PureWindowsPath(program).name.lower()
    return name in ("wsl.exe", "wsl")


#: wsl.exe writes its own messages in UTF-8 when this is set (UTF-16LE otherwise). Not
#: listed in WSLENV: the Linux programs it runs do not need it.
WSL_UTF8 = {"WSL_UTF8": "1"}


def process_environment(
    argv: Sequence[str], extra: Mapping[str, str] | None, inherited: Mapping[str, str]
) -> dict[str, str] | None:
    """The environment of a child: ``inherited`` plus ``extra``, plus ``WSL_UTF8=1`` for
    every wsl.exe call. None: inherit unchanged."""
    wanted = dict(extra or {})
    if argv and is_wsl_exe(argv[0]):
        wanted.update(WSL_UTF8)
    if not wanted:
        return None
    return {**inherited, **wanted}


class JobApi(Protocol):
    """The Win32 calls a kill-on-close Job object needs (:class:`Win32JobApi` on
    Windows, a recording fake in tests)."""

    def create_kill_on_close_job(self) -> int: ...
    def assign(self, job: int, pid: int) -> None: ...
    def close(self, handle: int) -> None: ...


class ChildJob:
    """The processes the app starts end with the app, however it ends.

    One Job object with ``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE``, made at the first
    child: Windows closes the app's handle to it when the app exits (a crash and End
    Task included), and that kills every process in the job. A wsl.exe killed this way
    closes the stdin of the server script inside WSL, which then stops the server (see
    :func:`build_server_command`). A child that cannot join the job is logged and runs
    on (the app still stops it on Quit).
    """

    def __init__(self, api: JobApi) -> None:
        self._api = api
        self._lock = threading.Lock()
        self._handle: int | None = None

    def adopt(self, pid: int) -> bool:
        with self._lock:
            try:
                if self._handle is None:
                    self._handle = self._api.create_kill_on_close_job()
                self._api.assign(self._handle, pid)
            except OSError as exc:
                log.warning("process %d is not tied to the app's lifetime: %s", pid, exc)
                return False
            return True

    def close(self) -> None:
        """Close the job now: its processes are killed (Windows does this at exit)."""
        with self._lock:
            if self._handle is not None:
                self._api.close(self._handle)
                self._handle = None


if sys.platform == "win32":  # mypy checks this part only for Windows

    class Win32JobApi:
        """:class:`JobApi` through the prototypes in :mod:`desktop.win32.api` (Windows only)."""

        def __init__(self) -> None:
            from desktop.win32 import api

            self._api = api

        def create_kill_on_close_job(self) -> int:
            import ctypes

            api = self._api
            job = api.CreateJobObjectW(None, None)
            if not job:
                raise ctypes.WinError(ctypes.get_last_error())
            info = api.JOBOBJECT_EXTENDED_LIMIT_INFORMATION()
            info.BasicLimitInformation.LimitFlags = api.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
            if not api.SetInformationJobObject(
                job, api.JobObjectExtendedLimitInformation, ctypes.byref(info), ctypes.sizeof(info)
            ):
                error = ctypes.get_last_error()
                api.CloseHandle(job)
                raise ctypes.WinError(error)
            return int(job)

        def assign(self, job: int, pid: int) -> None:
            import ctypes

            api = self._api
            process = api.OpenProcess(api.PROCESS_SET_QUOTA | api.PROCESS_TERMINATE, False, pid)
            if not process:
                raise ctypes.WinError(ctypes.get_last_error())
            try:
                if not api.AssignProcessToJobObject(job, process):
                    raise ctypes.WinError(ctypes.get_last_error())
            finally:
                api.CloseHandle(process)

        def close(self, handle: int) -> None:
            self._api.CloseHandle(handle)


_app_job: ChildJob | None = None
_app_job_lock = threading.Lock()


def app_child_job() -> ChildJob | None:
    """The app's one :class:`ChildJob` on Windows; None elsewhere."""
    global _app_job
    if sys.platform == "win32":
        with _app_job_lock:
            if _app_job is None:
                _app_job = ChildJob(Win32JobApi())
            return _app_job
    return None


class _RunningProcess:
    """A started process whose ``wait`` returns only after its last line was handed on
    (so a caller that reads the output after the exit sees all of it)."""

    def __init__(self, proc: subprocess.Popen[bytes], readers: list[threading.Thread]) -> None:
        self._proc = proc
        self._readers = readers
        self.pid = proc.pid

    def poll(self) -> int | None:
        return self._proc.poll()

    def terminate(self) -> None:
        self._proc.terminate()

    def kill(self) -> None:
        self._proc.kill()

    def close_input(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):  # the process is gone already
                self._proc.stdin.close()

    def wait(self, timeout: float | None = None) -> int:
        code = self._proc.wait(timeout)
        for reader in self._readers:  # pipes close when the process (and its children) end
            reader.join(5.0)
        return code


def _pump(stream: io.BufferedReader, on_line: Callable[[str], None]) -> None:
    """Hand on each line of one output stream, decoded on its own."""
    decoder = ConsoleDecoder()
    while chunk := stream.read1(65536):  # whatever arrived, without waiting for more
        for line in decoder.feed(chunk):
            on_line(line)
    for line in decoder.close():
        on_line(line)


class SubprocessRunner:
    """Real processes; output lines are read on threads and handed to ``on_line``.

    stdout and stderr are read and decoded apart (see :class:`Captured`); ``on_line``
    may be called from either reader, one line at a time.
    """

    def __init__(self, job: ChildJob | None = None) -> None:
        """``job``: where started processes go; default: the app's job on Windows."""
        self._job = job if job is not None else app_child_job()

    def start(
        self,
        argv: Sequence[str],
        on_line: Callable[[str], None],
        env: Mapping[str, str] | None = None,
        keep_input: bool = False,
    ) -> ProcessHandle:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window on Windows
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if keep_input else subprocess.DEVNULL,
            env=process_environment(argv, env, os.environ),
            creationflags=flags,
        )
        if self._job is not None:
            self._job.adopt(proc.pid)
        lock = threading.Lock()

        def one_line(line: str) -> None:
            with lock:
                on_line(line)

        readers = []
        for stream, name in ((proc.stdout, "process-stdout"), (proc.stderr, "process-stderr")):
            assert isinstance(stream, io.BufferedReader)  # Popen's default buffering
            reader = threading.Thread(target=_pump, args=(stream, one_line), name=name, daemon=True)
            reader.start()
            readers.append(reader)
        return _RunningProcess(proc, readers)

    def run(self, argv: Sequence[str], timeout: float) -> int:
        return self.capture(argv, timeout).returncode

    def capture(self, argv: Sequence[str], timeout: float) -> Captured:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            done = subprocess.run(
                list(argv),
                timeout=timeout,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                env=process_environment(argv, None, os.environ),
                creationflags=flags,
            )
        except OSError as exc:
            log.info("cannot run %s: %s", argv[0], exc)
            return Captured(-1, b"", f"cannot run {argv[0]}: {exc.strerror or exc}")
        except subprocess.TimeoutExpired as exc:
            log.warning("%s did not finish within %.0f s", argv[0], timeout)
            partial = exc.output if isinstance(exc.output, bytes) else b""
            errors = exc.stderr if isinstance(exc.stderr, bytes) else b""
            reason = f"{argv[0]} did not finish within {timeout:.0f} s"
            return Captured(-1, partial, reason, errors)
        return Captured(done.returncode, done.stdout, errors=done.stderr)


# ---------------------------------------------------------------- the launcher


def is_tingxie_health(body: object) -> bool:
    """A /healthz body of a tingxie server (``"server": "tingxie/<version>"``)."""
    return (
        isinstance(body, dict)
        and "model_state" in body
        and str(body.get("server", "")).startswith("tingxie/")
    )


def probe_health(
    url: str, timeout: float = 2.0, context: ssl.SSLContext | None = None
) -> dict[str, object] | None:
    """The server's /healthz body (200 or 503), or None if nothing answers.

    ``context``: for https, the TLS context the dictation client uses for the same
    server (it may trust a private CA). A loopback URL is asked without any proxy."""
    try:
        with opener_for(url, context).open(url, timeout=timeout) as response:
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


HealthProbe = Callable[[str, float, "ssl.SSLContext | None"], "dict[str, object] | None"]


class ServerLauncher:
    """Starts the server, watches it until ready, restarts it after a crash.

    Before starting, it looks at the port: a tingxie server that already answers there
    is stopped with the stop command when it is the one this app started earlier (its
    process id is in the pidfile), else adopted: watched, never stopped by the app.
    Everything that waits runs on the watcher thread; :meth:`stop` returns at once
    unless asked to wait. ``on_state(state, detail)`` is called from other threads.
    """

    def __init__(
        self,
        runner: ProcessRunner,
        on_state: Callable[[LauncherState, str], None],
        *,
        poll_s: float = 0.5,
        restart_policy: RestartPolicy | None = None,
        log_lines: int = 2000,
        probe: HealthProbe = probe_health,
        takeover_timeout_s: float = 20.0,
        input_grace_s: float = 3.0,
    ) -> None:
        self._runner = runner
        self._on_state = on_state
        self._poll_s = poll_s
        self._policy = restart_policy or RestartPolicy()
        self._probe = probe
        self._takeover_timeout_s = takeover_timeout_s
        self._input_grace_s = input_grace_s
        self._log: collections.deque[str] = collections.deque(maxlen=log_lines)
        self._lock = threading.Lock()
        self._proc: ProcessHandle | None = None
        self._adopted = False
        self._active = False  # between start() and stop() (or giving up)
        self._argv: list[str] = []
        self._env: dict[str, str] = {}
        self._stop_argv: list[str] | None = None
        self._health_url = ""
        self._tls: ssl.SSLContext | None = None
        # One event per start: a watcher of an earlier run (still ending after a stop()
        # that did not wait) keeps its own, set, and neither acts nor reports again.
        self._stopping = threading.Event()
        self._local = threading.local()
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
        """Started and not stopped: our process runs, is about to, or a server that was
        already there is adopted."""
        if not self._active:
            return False
        proc = self._proc
        return proc is None or proc.poll() is None

    @property
    def adopted(self) -> bool:
        """The server watched is one this app did not start (and will not stop)."""
        return self._adopted

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self._log)

    def _append_log(self, line: str) -> None:
        with self._lock:
            self._log.append(line)

    @property
    def _run_stopping(self) -> threading.Event:
        """The stop event of the run this thread serves (the watcher's own)."""
        event: threading.Event = getattr(self._local, "stopping", self._stopping)
        return event

    def _set(self, state: LauncherState, detail: str = "") -> None:
        if state is not LauncherState.STOPPED and self._run_stopping.is_set():
            return  # a stopped run's watcher: its news is old
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
        ``ca_file`` is trusted when watching a ``wss://`` server's /healthz. Returns at
        once: the port check and the start happen on the watcher thread."""
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
        self._stopping = threading.Event()
        self._proc = None
        self._adopted = False
        self._active = True
        self._set(LauncherState.STARTING, "starting the server")
        self._watcher = threading.Thread(
            target=self._run, args=(self._stopping,), name="server-watch", daemon=True
        )
        self._watcher.start()

    def _health(self, timeout: float) -> dict[str, object] | None:
        return self._probe(self._health_url, timeout, self._tls)

    def _run(self, stopping: threading.Event) -> None:
        self._local.stopping = stopping
        if self._take_over_port():
            self._watch()

    def _take_over_port(self) -> bool:
        """Make the port ours; False when a server there was adopted (or we stopped)."""
        body = self._health(min(2.0, self._poll_s * 4))
        if not is_tingxie_health(body):
            return self._spawn()
        port = urlsplit(self._health_url).port
        assert body is not None
        leaving = bool(body.get("shutting_down"))  # say, the one stop() just asked to end
        if self._stop_argv or leaving:
            if self._stop_argv and not leaving:
                self._append_log(
                    f"a tingxie server already answers on port {port}; stopping the one this "
                    "app started earlier"
                )
                self._runner.run(self._stop_argv, timeout=10)
            self._set(LauncherState.STARTING, f"stopping the server already on port {port}")
            deadline = time.monotonic() + self._takeover_timeout_s
            while time.monotonic() < deadline and not self._run_stopping.is_set():
                if not is_tingxie_health(self._health(1.0)):
                    return self._spawn()
                self._run_stopping.wait(self._poll_s)
            if self._run_stopping.is_set():
                return False
        self._adopted = True
        self._append_log(
            f"using the tingxie server already running on port {port}: this app did not "
            "start it and will not stop it"
        )
        self._watch_adopted()
        return False

    def _watch_adopted(self) -> None:
        """Follow a server we did not start; when it goes away, start ours."""
        started = time.monotonic()
        while not self._run_stopping.is_set():
            body = self._health(min(2.0, self._poll_s * 4))
            if not is_tingxie_health(body):
                self._append_log("the tingxie server that was already running has stopped")
                self._adopted = False
                if self._spawn():
                    self._watch()
                return
            assert body is not None
            self._show_health(body, started, prefix="already running: ")
            self._run_stopping.wait(self._poll_s)

    def _spawn(self) -> bool:
        with self._lock:
            if self._run_stopping.is_set():
                return False
            self._log.append(f"$ {shlex.join(redact_argv(self._argv))}")
        self._set(LauncherState.STARTING, "starting the server")
        try:
            proc = self._runner.start(
                self._argv, self._append_log, self._env or None, keep_input=True
            )
        except OSError as exc:
            if not self._run_stopping.is_set():
                self._proc = None
                self._active = False
            self._set(LauncherState.FAILED, f"cannot start {self._argv[0]}: {exc}")
            return False
        with self._lock:
            late = self._run_stopping.is_set()
            if not late:
                self._proc = proc
        if late:  # stop() ran while it started: it saw no process to end
            self._end(proc, 15.0)
            return False
        return True

    def _show_health(self, body: dict[str, object], started: float, prefix: str = "") -> None:
        waited = time.monotonic() - started
        if body.get("model_state") == "ready":
            self._set(LauncherState.READY, prefix + str(body.get("model", "")))
        elif body.get("model_state") == "failed":
            self._set(
                LauncherState.FAILED, f"{prefix}model failed to load: {body.get('model_error')}"
            )
        else:
            self._set(
                LauncherState.LOADING,
                f"{prefix}loading {body.get('model', 'the model')} ({waited:.0f} s)",
            )

    def _watch(self) -> None:
        started = time.monotonic()
        while not self._run_stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            code = proc.poll()
            if code is not None:
                proc.close_input()  # our end of its stdin pipe
                if self._run_stopping.is_set():
                    break
                tail = "; ".join(list(self._log)[-3:])
                if self._policy.allow(time.monotonic()):
                    self._set(
                        LauncherState.CRASHED,
                        f"server exited with code {code}; restarting ({tail})",
                    )
                    if not self._spawn():
                        return
                    started = time.monotonic()
                    continue
                self._active = False
                self._set(
                    LauncherState.FAILED,
                    f"server exited with code {code} again; not restarting ({tail})",
                )
                return
            body = self._health(min(2.0, self._poll_s * 4))
            if body is None:
                self._set(
                    LauncherState.STARTING,
                    f"waiting for the server ({time.monotonic() - started:.0f} s)",
                )
            else:
                self._show_health(body, started)
            self._run_stopping.wait(self._poll_s)

    def _ask_to_end(self, proc: ProcessHandle) -> None:
        """Ask ``proc`` to finish cleanly; quick, so Quit can do it on the UI thread."""
        proc.close_input()  # the WSL script stops the server at end of file
        if proc.poll() is not None:
            return
        if not self._stop_argv:
            proc.terminate()  # SIGTERM: the server finishes open finals

    def _insist(self, proc: ProcessHandle, timeout: float) -> None:
        """Wait for ``proc`` to end; the stop command, then kill, if it overstays."""
        if self._stop_argv:
            try:
                proc.wait(self._input_grace_s)
                return
            except subprocess.TimeoutExpired:
                self._runner.run(self._stop_argv, timeout=10)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("server did not stop within %.0f s; killing it", timeout)
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def _end(self, proc: ProcessHandle, timeout: float) -> None:
        self._ask_to_end(proc)
        self._insist(proc, timeout)

    def stop(self, timeout: float = 15.0, wait: bool = False) -> None:
        """Stop the server we started (an adopted one is only no longer watched).

        Returns at once (Quit must not wait for a model to unload): the server is asked
        to stop now, and a thread waits for it and kills it if it overstays ``timeout``.
        ``wait``: return only when it has ended (the setup, before starting another)."""
        self._stopping.set()
        with self._lock:
            proc, self._proc = self._proc, None
        watcher, self._watcher = self._watcher, None
        self._active = False
        self._adopted = False

        if proc is not None:
            self._ask_to_end(proc)

        def finish() -> None:
            if watcher is not None and watcher is not threading.current_thread():
                watcher.join(15)
            if proc is not None:
                self._insist(proc, timeout)

        if wait:
            finish()
        else:
            threading.Thread(target=finish, name="server-stop", daemon=True).start()
        self._set(LauncherState.STOPPED, "")
