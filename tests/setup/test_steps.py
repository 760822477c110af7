"""The setup steps: the recorded WSL GPU machine end to end, failures and Retry, the
remote check against a real server, and the CPU path on this machine for real."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from desktop.launcher import LauncherState, ServerLauncher, SubprocessRunner
from desktop.settings import Launcher
from desktop.setup.commands import Target
from desktop.setup.decide import MODEL_SMALL, PathKind, decide
from desktop.setup.probe import ProbeConfig, Prober
from desktop.setup.problems import Problem
from desktop.setup.steps import (
    SetupChoice,
    SetupListener,
    SetupRun,
    build_steps,
    check_remote,
    choice_from_option,
)
from tests.conftest import free_port, spawn_fake_server
from tests.setup.recorded import RecordedRunner

ROOT = Path(__file__).parents[2]


@dataclass
class Recorder(SetupListener):
    events: list[tuple[str, int]] = field(default_factory=list)
    progress: list[tuple[int, float | None, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    settings: dict[str, Any] | None = None

    def step_started(self, index: int) -> None:
        self.events.append(("started", index))

    def step_progress(self, index: int, fraction: float | None, text: str) -> None:
        self.progress.append((index, fraction, text))

    def step_log(self, index: int, line: str) -> None:
        self.lines.append(line)

    def step_done(self, index: int) -> None:
        self.events.append(("done", index))

    def step_failed(self, index: int, problem: Problem) -> None:
        self.events.append(("failed", index))
        self.problems.append(problem)

    def finished(self, settings: dict[str, Any]) -> None:
        self.settings = settings


def choice_for(runner: RecordedRunner, port: int) -> SetupChoice:
    """What the dialog builds from the recommendation (its default choice)."""
    facts = Prober(runner, ProbeConfig(windows=True, port=port, local_pythons=())).run()
    option = decide(facts).option(PathKind.WSL_GPU)
    assert option.available
    choice = choice_from_option(option, facts, token="t0ken-from-setup")
    assert choice.target == Target("/home/lin/.local/share/tingxie", ("python3",), "Ubuntu-24.04")
    return choice


def test_recorded_wsl_gpu_machine_is_set_up_end_to_end(
    wsl_machine: tuple[RecordedRunner, ServerLauncher, int],
) -> None:
    runner, launcher, port = wsl_machine
    choice = choice_for(runner, port)
    steps = build_steps(choice, launcher)
    assert [s.key for s in steps] == ["venv", "install", "download", "configure", "start"]
    recorder = Recorder()
    assert SetupRun(steps, runner, recorder).run() is None
    assert recorder.events == [(kind, i) for i in range(5) for kind in ("started", "done")]

    settings = recorder.settings
    assert settings is not None
    model = "/home/lin/.local/share/tingxie/models/Qwen3-ASR-1.7B"
    assert settings == {
        "server_url": f"ws://127.0.0.1:{port}",
        "token": "t0ken-from-setup",
        "launcher": Launcher.WSL,
        "wsl_distro": "Ubuntu-24.04",
        "server_command": "/home/lin/.local/share/tingxie/venv/bin/tingxie-server "
        f"--model {model} --backend vllm --max-model-len 4096 "
        f"--gpu-memory-utilization 0.83 --port {port}",
        "start_server_on_launch": True,
        "server_configured": True,
    }
    # Progress: pip's stages as text, the download as a rising fraction.
    texts = [text for _i, _f, text in recorder.progress]
    assert "Downloading torch (899.7 MB)" in texts and "Installing 6 packages…" in texts
    fractions = [f for i, f, _t in recorder.progress if i == 2 and f is not None]
    assert fractions == sorted(fractions) and 0 < fractions[1] < 1 and fractions[-1] == 1.0
    assert "Downloading the model: 1.05 of 4.70 GB" in texts

    # The token reached the server through the environment (WSLENV for wsl.exe), not argv:
    # the server that answered now refuses anyone without it.
    start_env = runner.envs[-1]
    assert start_env["TINGXIE_TOKEN"] == "t0ken-from-setup"
    assert "TINGXIE_TOKEN" in start_env["WSLENV"].split(":")
    assert all("t0ken-from-setup" not in " ".join(call) for call in runner.calls)
    assert check_remote(settings["server_url"], "t0ken-from-setup") is None
    refused = check_remote(settings["server_url"], "wrong")
    assert refused is not None and "refused the token" in refused.message

    # Every step can run again: the environment is kept, the server is not started twice.
    again = Recorder()
    assert SetupRun(build_steps(choice, launcher), runner, again).run() is None
    create = ["wsl.exe", "-d", "Ubuntu-24.04", "--exec", "python3", "-m", "venv"]
    assert sum(call[:7] == create for call in runner.calls) == 1
    assert len(runner.served) == 1 and launcher.state is LauncherState.READY
    assert ("The Python environment is already there.") in [t for _i, _f, t in again.progress]

    # Set up again with another token: the server restarts with it (else the app, holding
    # the new token, would be locked out of the server still running with the old one).
    third = Recorder()
    new_choice = replace(choice, token="another")
    assert SetupRun(build_steps(new_choice, launcher), runner, third).run() is None
    assert len(runner.served) == 2 and runner.served[0].poll() is not None
    assert check_remote(settings["server_url"], "another") is None


def test_download_failure_is_explained_and_retry_continues_there(
    wsl_machine: tuple[RecordedRunner, ServerLauncher, int],
) -> None:
    runner, launcher, port = wsl_machine
    choice = choice_for(runner, port)
    assert choice.target is not None and choice.model is not None
    download = choice.target.download(choice.model)
    runner.script(
        download,
        runner.recording("download_network_error.out", 1),
        runner.recording("download.out", 0),
    )
    recorder = Recorder()
    setup = SetupRun(build_steps(choice, launcher), runner, recorder)
    failed = setup.run()
    assert failed == 2 and recorder.events[-1] == ("failed", 2)
    problem = recorder.problems[-1]
    assert problem.code == "network_failed" and "Retry" in problem.next_step
    assert "Temporary failure in name resolution" in problem.detail
    assert setup.run(failed) is None and recorder.settings is not None
    assert recorder.events[-2:] == [("started", 4), ("done", 4)]


def test_the_setup_reads_pip_and_the_download_through_the_proxy_warning() -> None:
    """The machine whose every wsl.exe call starts with WSL's UTF-16 proxy warning on
    stderr: pip's stages, the download's progress and the server come out as without."""
    port = free_port()
    runner = RecordedRunner("proxy_warning", port=port)
    launcher = ServerLauncher(runner, lambda state, detail: None, poll_s=0.1)
    try:
        recorder = Recorder()
        assert (
            SetupRun(build_steps(choice_for(runner, port), launcher), runner, recorder).run()
            is None
        )
        texts = [text for _i, _f, text in recorder.progress]
        assert "Downloading torch (899.7 MB)" in texts
        assert "Downloading the model: 1.05 of 4.70 GB" in texts
        assert recorder.settings is not None and launcher.state is LauncherState.READY
        warning = "wsl: A localhost proxy configuration was detected but not mirrored into WSL."
        assert any(line.startswith(warning) for line in recorder.lines)  # in the log, readable
    finally:
        launcher.stop(wait=True)
        runner.stop_served()


@pytest.mark.parametrize(
    ("step", "recording", "code", "advice"),
    [
        ("venv", "venv_ensurepip.out", "venv_unavailable", "sudo apt install python3-venv"),
        ("install", "pip_not_found.out", "package_not_found", "wheel file"),
    ],
)
def test_install_failures_say_what_to_do(
    wsl_machine: tuple[RecordedRunner, ServerLauncher, int],
    step: str,
    recording: str,
    code: str,
    advice: str,
) -> None:
    runner, launcher, port = wsl_machine
    choice = choice_for(runner, port)
    target = choice.target
    assert target is not None
    if step == "venv":
        runner.script(target.venv_works(), runner.recording("venv_missing.out", 1))
        runner.script(target.create_venv(), runner.recording(recording, 1))
    else:
        runner.script(target.pip_install("tingxie[server,vllm]==0.1.0"),
                      runner.recording(recording, 1))  # fmt: skip
    recorder = Recorder()
    steps = build_steps(choice, launcher)
    failed = SetupRun(steps, runner, recorder).run()
    assert failed is not None and steps[failed].key == step
    assert recorder.problems[-1].code == code and advice in recorder.problems[-1].next_step


def test_server_that_dies_while_starting_is_explained(tmp_path: Path) -> None:
    """A real process that fails the way vLLM does when the GPU memory is taken."""
    script = tmp_path / "server.py"
    script.write_text(
        "import sys\n"
        "print('INFO tingxie-server: loading Qwen3-ASR')\n"
        "print('ValueError: Free memory on device (3.1/12.0 GiB) on startup is less than "
        "desired GPU memory utilization (0.83, 9.96 GiB).', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    target = Target(str(tmp_path), (sys.executable,))
    launcher = ServerLauncher(SubprocessRunner(), lambda s, d: None, poll_s=0.05)
    choice = SetupChoice(PathKind.LOCAL_CPU, port=free_port(), target=target, test_engine=True)
    steps = build_steps(choice, launcher)
    recorder = Recorder()
    setup = SetupRun(steps, SubprocessRunner(), recorder)
    setup.outcome.server_command = shlex.join([sys.executable, str(script)])
    setup.outcome.settings = {
        "launcher": Launcher.DIRECT,
        "server_url": f"ws://127.0.0.1:{choice.port}",
    }
    try:
        assert setup.run(len(steps) - 1) == len(steps) - 1
    finally:
        launcher.stop()
    problem = recorder.problems[-1]
    assert problem.code == "server_out_of_memory" and "smaller model" in problem.next_step


# ---------------------------------------------------------------- remote server


def test_remote_server_check_against_a_real_server(subprocess_env: dict[str, str]) -> None:
    proc, port = spawn_fake_server("--token", "right", env=subprocess_env)
    url = f"ws://127.0.0.1:{port}"
    try:
        assert check_remote(url, "right") is None
        wrong = check_remote(url, "wrong")
        assert wrong is not None and wrong.message == f"The server at {url} refused the token."
        missing = check_remote(url, "")
        assert missing is not None and missing.code == "remote_needs_token"  # none was sent
        assert "needs a token, and none was given" in missing.message
    finally:
        proc.terminate()
        proc.wait(10)
    gone = check_remote(url, "right", timeout_s=2)
    assert gone is not None and gone.code == "remote_unreachable"
    bad = check_remote("http://example", "")
    assert bad is not None and bad.code == "bad_remote_url"


# ---------------------------------------------------------------- this machine, for real


def test_local_server_is_configured_started_and_answers_with_its_token(tmp_path: Path) -> None:
    """The last two steps with real processes: the command written to the settings is
    read back by the launcher, started, watched until /healthz says ready, and the
    token goes with it. In the environment's place: an entry-point script like the one
    pip writes for ``tingxie-server``, running this checkout (test engine)."""
    target = Target(str(tmp_path / "data dir 数据"), (sys.executable,))
    program = Path(target.server_program)
    program.parent.mkdir(parents=True)
    program.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        "from server.app import main\nsys.exit(main())\n"
    )
    program.chmod(0o755)
    launcher = ServerLauncher(SubprocessRunner(), lambda s, d: None, poll_s=0.1)
    choice = SetupChoice(
        PathKind.LOCAL_CPU, port=free_port(), target=target, token="local-token", test_engine=True
    )
    steps = build_steps(choice, launcher)
    recorder = Recorder()
    try:
        configure = [s.key for s in steps].index("configure")
        assert SetupRun(steps, SubprocessRunner(), recorder).run(configure) is None
        settings = recorder.settings
        assert settings is not None and settings["launcher"] is Launcher.DIRECT
        assert shlex.split(settings["server_command"])[0] == target.server_program
        assert launcher.state is LauncherState.READY
        assert check_remote(settings["server_url"], "local-token") is None
        assert check_remote(settings["server_url"], "") is not None
    finally:
        launcher.stop()


@pytest.mark.skipif(
    not os.environ.get("TINGXIE_TEST_SETUP_INSTALL"),
    reason="about 15 s: set TINGXIE_TEST_SETUP_INSTALL=1 (docs/setup.md)",
)
def test_cpu_server_installed_from_a_wheel_on_this_machine_for_real(tmp_path: Path) -> None:
    """Every step with real processes except the model download: a virtual environment
    made by this Python (sharing its packages, as on an offline machine), pip installing
    a wheel of this checkout with the CPU extras, the server started from it."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(ROOT)],
        check=True, timeout=300,
    )  # fmt: skip
    wheel = next(wheels.glob("tingxie-*.whl"))
    target = Target(str(tmp_path / "tingxie data"), (sys.executable,), system_site_packages=True)
    launcher = ServerLauncher(SubprocessRunner(), lambda s, d: None, poll_s=0.1)
    choice = SetupChoice(
        PathKind.LOCAL_CPU, port=free_port(), target=target, model=MODEL_SMALL,
        token="local-token", test_engine=True, wheel=str(wheel),
    )  # fmt: skip
    recorder = Recorder()
    try:
        failed = SetupRun(build_steps(choice, launcher), SubprocessRunner(), recorder).run()
        assert failed is None, recorder.problems
        assert Path(target.server_program).exists()
        assert launcher.state is LauncherState.READY
        assert recorder.settings is not None
        assert check_remote(recorder.settings["server_url"], "local-token") is None
    finally:
        launcher.stop()
    assert any("Successfully installed" in line and "tingxie-0.1.0" in line
               for line in recorder.lines)  # fmt: skip
