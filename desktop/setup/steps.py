"""The setup steps and the thread-free runner that carries them out.

Each step can run again: a working virtual environment is kept, pip skips what is
installed, the download resumes and keeps what is whole, a server that already runs
is waited for rather than started twice. A failing step raises :class:`StepFailed`
with a :class:`Problem` (plain words + what to do); Retry runs the steps again from
the one that failed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from desktop.launcher import (
    LauncherState,
    ProcessRunner,
    ServerLauncher,
    build_server_command,
    build_wsl_stop_command,
    server_environment,
)
from desktop.settings import Launcher
from desktop.setup import commands, problems, progress
from desktop.setup.commands import Target
from desktop.setup.decide import MachineFacts, ModelChoice, Option, PathKind, utilization_for
from desktop.setup.problems import Problem
from protocol.endpoint import DEFAULT_PORT
from protocol.version import __version__

log = logging.getLogger(__name__)


class StepFailed(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class StepCancelled(Exception):
    pass


@dataclass(frozen=True)
class SetupChoice:
    """What the user chose in the first-run dialog."""

    kind: PathKind
    port: int = DEFAULT_PORT
    target: Target | None = None  # where a local server goes (WSL_GPU, LOCAL_CPU)
    model: ModelChoice | None = None
    gpu_memory_utilization: float = 0.0  # WSL_GPU only
    wheel: str = ""  # a tingxie wheel file on this PC instead of the package index
    remote_url: str = ""
    token: str = ""  # remote: the server's token; local: made up for the new server
    ca_file: str = ""  # remote wss:// with a private CA or self-signed certificate
    test_engine: bool = False  # the server's fake engine: tries the path, no model download
    hub_endpoint: str = ""  # a model hub mirror


@dataclass
class Outcome:
    """What the steps found out, read by later steps and turned into settings."""

    model_dir: str = ""
    server_command: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    runner: ProcessRunner
    cancel: threading.Event
    progress: Callable[[float | None, str], None]
    log: Callable[[str], None]
    outcome: Outcome

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise StepCancelled()

    def stream(
        self,
        argv: Sequence[str],
        on_line: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        """Run ``argv`` to its end, handing each output line on; (exit code, output)."""
        self.check_cancelled()
        lines: list[str] = []

        def take(line: str) -> None:
            lines.append(line)
            self.log(line)
            if on_line is not None:
                on_line(line)

        self.log(f"$ {' '.join(argv)}")
        try:
            handle = self.runner.start(argv, take, env)
        except OSError as exc:
            return -1, f"cannot run {argv[0]}: {exc}"
        while True:
            try:
                code = handle.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if self.cancel.is_set():
                    handle.terminate()
                    handle.wait(15)
                    raise StepCancelled() from None
        return code, "\n".join(lines)


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    action: Callable[[StepContext], None]


# ---------------------------------------------------------------- local server steps


def _create_venv(target: Target) -> Callable[[StepContext], None]:
    def run(ctx: StepContext) -> None:
        ctx.progress(None, f"Checking the Python environment in {target.where}…")
        code, _ = ctx.stream(target.venv_works())
        if code == 0:
            ctx.progress(1.0, "The Python environment is already there.")
            return
        ctx.progress(None, f"Creating {target.venv_dir}…")
        code, output = ctx.stream(target.create_venv())
        if code != 0 or ctx.stream(target.venv_works())[0] != 0:
            raise StepFailed(progress.venv_failure(output, target.where))
        ctx.progress(1.0, "Python environment ready.")

    return run


def _install(target: Target, extras: Sequence[str], wheel: str) -> Callable[[StepContext], None]:
    def run(ctx: StepContext) -> None:
        pip = progress.PipProgress()

        def show(line: str) -> None:
            if (text := pip.feed(line)) is not None:
                ctx.progress(None, text)

        uri = ""
        if wheel:
            path = wheel
            if target.in_wsl:
                code, output = ctx.stream(target.to_target_path(wheel))
                path = output.strip().splitlines()[-1] if code == 0 and output.strip() else ""
                if not path:
                    raise StepFailed(problems.install_failed(f"wslpath: {output}"))
            uri = commands.wheel_uri(path, windows=target.windows_paths)
        wanted = commands.requirement(extras, __version__, uri)
        ctx.progress(None, f"Installing {wanted}…")
        argv = target.pip_install(wanted, cpu_torch="transformers" in extras)
        code, output = ctx.stream(argv, show)
        if code != 0:
            raise StepFailed(progress.pip_failure(output, wanted))
        ctx.progress(1.0, "The server is installed.")

    return run


def _download(target: Target, model: ModelChoice, endpoint: str) -> Callable[[StepContext], None]:
    def run(ctx: StepContext) -> None:
        events: list[progress.DownloadEvent] = []

        def show(line: str) -> None:
            event = progress.parse_download_line(line)
            if event is None:
                return
            events.append(event)
            if event.event == "progress":
                ctx.progress(progress.download_fraction(event), progress.download_text(event))

        ctx.progress(None, f"Downloading {model.label}…")
        code, output = ctx.stream(target.download(model, endpoint), show)
        done = next((e for e in events if e.event == "done"), None)
        error = next((e for e in events if e.event == "error"), None)
        if code != 0 or done is None:
            kind = error.kind if error is not None else "failed"
            detail = error.message if error is not None else output[-2000:]
            raise StepFailed(problems.download_failed(kind, model.repo, detail))
        ctx.outcome.model_dir = done.path
        ctx.progress(1.0, f"{model.label} is in {done.path}.")

    return run


def _configure(choice: SetupChoice) -> Callable[[StepContext], None]:
    def run(ctx: StepContext) -> None:
        target = choice.target
        assert target is not None
        try:
            if choice.test_engine:
                argv = commands.fake_server_argv(target, choice.port)
            elif choice.kind is PathKind.WSL_GPU:
                argv = commands.gpu_server_argv(
                    target, ctx.outcome.model_dir, choice.port, choice.gpu_memory_utilization
                )
            else:
                argv = commands.cpu_server_argv(target, ctx.outcome.model_dir, choice.port)
        except ValueError as exc:
            raise StepFailed(problems.install_failed(f"the model folder: {exc}")) from None
        command = target.server_command(argv)
        ctx.outcome.server_command = command
        ctx.outcome.settings = {
            "server_url": f"ws://127.0.0.1:{choice.port}",
            "token": choice.token,
            "launcher": Launcher.WSL if target.in_wsl else Launcher.DIRECT,
            "wsl_distro": target.wsl_distro,
            "server_command": command,
            "start_server_on_launch": True,
            "server_configured": True,
        }
        ctx.log(f"server command: {command}")
        ctx.progress(1.0, "The server is configured.")

    return run


def _start(
    choice: SetupChoice,
    launcher: ServerLauncher,
    ready_timeout_s: float,
    unreachable_after_s: float,
) -> Callable[[StepContext], None]:
    def run(ctx: StepContext) -> None:
        target = choice.target
        assert target is not None
        settings = ctx.outcome.settings
        kind: Launcher = settings["launcher"]
        argv = build_server_command(
            kind, ctx.outcome.server_command, target.wsl_distro, windows=target.windows
        )
        stop = build_wsl_stop_command(target.wsl_distro) if target.in_wsl else None
        env = server_environment(choice.token, kind, os.environ.get("WSLENV", ""))
        if not launcher.running or (launcher.argv, launcher.env) != (argv, env):
            # Another server, another token, or a failed earlier attempt: start afresh.
            launcher.stop(wait=True)
            launcher.start(argv, str(settings["server_url"]), stop, env)
        started = time.monotonic()
        while True:
            if ctx.cancel.is_set():
                launcher.stop(wait=True)  # a half-started server is not left behind
                raise StepCancelled()
            state, detail = launcher.state, launcher.detail
            waited = time.monotonic() - started
            if state is LauncherState.READY:
                ctx.progress(1.0, f"The server is ready ({detail}).")
                return
            if state in (LauncherState.FAILED, LauncherState.CRASHED):
                log_text = f"{launcher.log_text()}\n{detail}"  # detail: why it could not start
                launcher.stop(wait=True)
                raise StepFailed(progress.server_failure(log_text, choice.port))
            # Listening in WSL for minutes while /healthz never answers here: the port is
            # not forwarded to Windows.
            stuck = state is LauncherState.STARTING and waited > unreachable_after_s
            if stuck and "listening on" in launcher.log_text():
                raise StepFailed(problems.server_unreachable(choice.port))
            if waited > ready_timeout_s:
                raise StepFailed(problems.server_start_timeout(ready_timeout_s / 60))
            ctx.progress(None, detail or "Starting the server…")
            time.sleep(0.2)

    return run


# ---------------------------------------------------------------- remote server


def check_remote(
    url: str, token: str, timeout_s: float = 10.0, ca_file: str = ""
) -> Problem | None:
    """Connect once and exchange hello/ready: None if the server takes us. ``ca_file``
    (else ``TINGXIE_CA_FILE``) is trusted for wss://, as the app will trust it."""
    from desktop.client import AuthFailed, ServerLink, VersionMismatch
    from desktop.streaming import CA_FILE_ENV

    if not url.startswith(("ws://", "wss://")) or len(url.split("//", 1)[1]) == 0:
        return problems.bad_remote_url(url)
    trusted = ca_file or os.environ.get(CA_FILE_ENV) or None

    async def attempt() -> None:
        link = await ServerLink.open(url, token=token or None, timeout_s=timeout_s, ca_file=trusted)
        await link.close()

    try:
        asyncio.run(attempt())
    except AuthFailed:
        return problems.remote_refused_token(url) if token else problems.remote_needs_token(url)
    except VersionMismatch as exc:
        return problems.remote_incompatible(url, str(exc))
    except Exception as exc:  # ServerUnreachable, and whatever else a bad address does
        return problems.remote_unreachable(url, str(exc))
    return None


def _connect(choice: SetupChoice) -> Callable[[StepContext], None]:
    def run(ctx: StepContext) -> None:
        url = choice.remote_url.strip()
        ctx.progress(None, f"Connecting to {url}…")
        problem = check_remote(url, choice.token, ca_file=choice.ca_file)
        if problem is not None:
            raise StepFailed(problem)
        ctx.outcome.settings = {
            "server_url": url,
            "token": choice.token,
            "ca_file": choice.ca_file,
            "start_server_on_launch": False,
            "server_configured": True,
        }
        ctx.progress(1.0, "Connected: the server answers and accepts the token.")

    return run


# ---------------------------------------------------------------- the plan


def new_token() -> str:
    return secrets.token_urlsafe(24)


def choice_from_option(
    option: Option,
    facts: MachineFacts,
    *,
    model: ModelChoice | None = None,
    wheel: str = "",
    remote_url: str = "",
    token: str = "",
    ca_file: str = "",
) -> SetupChoice:
    """The dialog's choice: the option as recommended, with what the user changed.

    A local server keeps ``token`` (or gets a new one); ``model`` may replace the
    recommended one (say, the smaller one after the GPU ran out of memory).
    """
    if option.kind is PathKind.REMOTE:
        return SetupChoice(option.kind, remote_url=remote_url, token=token, ca_file=ca_file)
    if option.kind is PathKind.EXISTING:
        url = f"ws://127.0.0.1:{option.port}"
        return SetupChoice(option.kind, port=option.port, remote_url=url, token=token)
    chosen = model or option.model
    wsl = facts.wsl
    if wsl is not None and wsl.distro is not None and option.where == wsl.distro.name:
        target = Target(commands.wsl_data_root(wsl.home), ("python3",), wsl.distro.name)
    else:
        local = facts.local
        if local is None or local.python is None:
            raise ValueError("no Python on this PC")
        target = Target(local.data_dir, local.python, windows=facts.windows)
    utilization = 0.0
    if option.gpu_plan is not None and chosen is not None:
        plan = option.gpu_plan
        utilization = utilization_for(plan.gpu.total_mib, plan.budget_mib, chosen)
    return SetupChoice(
        option.kind,
        port=option.port,
        target=target,
        model=chosen,
        gpu_memory_utilization=utilization,
        wheel=wheel,
        token=token or new_token(),
    )


def build_steps(
    choice: SetupChoice,
    launcher: ServerLauncher,
    *,
    ready_timeout_s: float = 30 * 60,  # vLLM's first start compiles and captures graphs
    unreachable_after_s: float = 120.0,
) -> list[Step]:
    if choice.kind in (PathKind.REMOTE, PathKind.EXISTING):
        return [Step("connect", "Connect to the server", _connect(choice))]
    target, model = choice.target, choice.model
    if target is None or (model is None and not choice.test_engine):
        raise ValueError("a local server needs a target and a model")
    extras = commands.GPU_EXTRAS if choice.kind is PathKind.WSL_GPU else commands.CPU_EXTRAS
    steps = [
        Step("venv", f"Create a Python environment in {target.where}", _create_venv(target)),
        Step("install", "Install the tingxie server", _install(target, extras, choice.wheel)),
    ]
    if not choice.test_engine:
        assert model is not None
        steps.append(
            Step(
                "download", f"Download {model.label}", _download(target, model, choice.hub_endpoint)
            )
        )
    steps += [
        Step("configure", "Configure the server", _configure(choice)),
        Step(
            "start",
            "Start the server",
            _start(choice, launcher, ready_timeout_s, unreachable_after_s),
        ),
    ]
    return steps


class SetupListener:
    """Callbacks from the setup; called on the setup's worker thread."""

    def step_started(self, index: int) -> None: ...
    def step_progress(self, index: int, fraction: float | None, text: str) -> None: ...
    def step_log(self, index: int, line: str) -> None: ...
    def step_done(self, index: int) -> None: ...
    def step_failed(self, index: int, problem: Problem) -> None: ...
    def finished(self, settings: dict[str, Any]) -> None: ...
    def cancelled(self) -> None: ...


class SetupRun:
    """Carries out the steps in order on the calling thread; Retry = ``run(failed)``."""

    def __init__(self, steps: list[Step], runner: ProcessRunner, listener: SetupListener) -> None:
        self.steps = steps
        self.outcome = Outcome()
        self._runner = runner
        self._listener = listener
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        self.cancel_event.set()

    def rearm(self) -> None:
        """Forget an earlier Cancel before running again. Called by whoever starts the run,
        before the worker thread exists, so a Cancel pressed right after is kept."""
        self.cancel_event.clear()

    def run(self, start: int = 0) -> int | None:
        """Run from step ``start``; returns the failed step's index, or None when done."""
        for index in range(start, len(self.steps)):
            step = self.steps[index]
            listener = self._listener
            ctx = StepContext(
                self._runner,
                self.cancel_event,
                functools.partial(listener.step_progress, index),
                functools.partial(listener.step_log, index),
                self.outcome,
            )
            listener.step_started(index)
            try:
                step.action(ctx)
            except StepCancelled:
                listener.cancelled()
                return index
            except StepFailed as failure:
                log.info("setup step %s failed: %s", step.key, failure.problem)
                listener.step_failed(index, failure.problem)
                return index
            except Exception as exc:  # a bug must not leave the dialog waiting forever
                log.exception("setup step %s crashed", step.key)
                listener.step_failed(index, problems.internal_error(step.title, str(exc)))
                return index
            listener.step_done(index)
        self._listener.finished(dict(self.outcome.settings))
        return None
