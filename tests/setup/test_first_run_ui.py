"""The first-run dialog, driven through recorded WSL machines and real servers."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer

from desktop.launcher import LauncherState, ServerLauncher
from desktop.settings import Launcher, Settings
from desktop.setup.decide import PathKind
from desktop.setup.probe import ProbeConfig
from desktop.ui.first_run import FirstRunDialog
from tests.app.test_widgets import save_screenshot
from tests.conftest import free_port, spawn_fake_server
from tests.setup.recorded import RecordedRunner

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


def usual_port() -> int:
    """8765 when free (a steady screenshot), else any free port."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8765)) != 0:
            return 8765
    return free_port()


class Machine:
    def __init__(self, name: str) -> None:
        self.port = usual_port()
        self.runner = RecordedRunner(name, port=self.port)
        self.launcher = ServerLauncher(self.runner, lambda s, d: None, poll_s=0.1)
        self.config = ProbeConfig(windows=True, port=self.port, local_pythons=(("py", "-3"),))

    def dialog(self, qtbot, settings: Settings | None = None) -> FirstRunDialog:  # type: ignore[no-untyped-def]
        dialog = FirstRunDialog(settings or Settings(), self.runner, self.launcher, self.config)
        qtbot.addWidget(dialog)
        dialog.resize(720, 640)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.pages.currentIndex() == dialog.PAGE_CHOOSE, timeout=10000)
        return dialog

    def close(self) -> None:
        self.launcher.stop()
        self.runner.stop_served()


@pytest.fixture
def gpu_machine() -> Iterator[Machine]:
    machine = Machine("gpu_ubuntu")
    yield machine
    machine.close()


def test_recorded_wsl_gpu_machine_from_recommendation_to_done(qtbot, gpu_machine: Machine) -> None:  # type: ignore[no-untyped-def]
    dialog = gpu_machine.dialog(qtbot)
    assert dialog.selected_kind() is PathKind.WSL_GPU
    button = dialog.option_buttons[PathKind.WSL_GPU]
    assert "recommended" in button.text() and button.isEnabled()
    assert "NVIDIA GeForce RTX 4070" in dialog.findings.text()
    assert dialog.model.currentText() == "Qwen3-ASR 1.7B" and dialog.model.count() == 2
    assert not dialog.remote_url.isEnabled()
    save_screenshot(dialog, "first_run", ARTIFACTS)

    with qtbot.waitSignal(dialog.configured, timeout=20000) as done:
        qtbot.mouseClick(dialog.setup_button, Qt.MouseButton.LeftButton)
        assert dialog.pages.currentIndex() == dialog.PAGE_STEPS  # the click returns at once
    settings = done.args[0]
    assert isinstance(settings, Settings)
    assert settings.server_configured and settings.start_server_on_launch
    assert settings.launcher is Launcher.WSL and settings.wsl_distro == "Ubuntu-24.04"
    assert settings.server_url == f"ws://127.0.0.1:{gpu_machine.port}"
    assert settings.token and settings.token in gpu_machine.runner.envs[-1]["TINGXIE_TOKEN"]
    assert "--max-model-len 4096" in settings.server_command
    assert dialog.pages.currentIndex() == dialog.PAGE_DONE
    assert gpu_machine.launcher.state is LauncherState.READY
    rows = [dialog.step_list.item(i).text() for i in range(dialog.step_list.count())]
    assert len(rows) == 5 and all(row.startswith("✓") for row in rows)
    assert "Successfully installed" in dialog.log_view.toPlainText()


def test_failure_is_explained_and_retry_finishes(qtbot, gpu_machine: Machine) -> None:  # type: ignore[no-untyped-def]
    runner = gpu_machine.runner
    model_dir = "/home/lin/.local/share/tingxie/models/Qwen3-ASR-1.7B"
    download = [
        "wsl.exe", "-d", "Ubuntu-24.04", "--exec",
        "/home/lin/.local/share/tingxie/venv/bin/python", "-m", "server.download",
        "--repo", "Qwen/Qwen3-ASR-1.7B", "--dest", model_dir,
    ]  # fmt: skip
    runner.script(
        download,
        runner.recording("download_network_error.out", 1),
        runner.recording("download.out", 0),
    )
    dialog = gpu_machine.dialog(qtbot)
    qtbot.mouseClick(dialog.setup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.retry.isVisible(), timeout=10000)
    assert "the internet could not be reached" in dialog.problem.text()
    assert "press Retry" in dialog.problem.text()
    assert dialog.step_list.item(2).text().startswith("✗")
    assert dialog.step_list.item(1).text().startswith("✓")
    assert "Temporary failure in name resolution" in dialog.log_view.toPlainText()
    save_screenshot(dialog, "first_run-failed", ARTIFACTS)
    with qtbot.waitSignal(dialog.configured, timeout=20000):
        qtbot.mouseClick(dialog.retry, Qt.MouseButton.LeftButton)
    assert not dialog.problem.isVisible()
    assert dialog.step_list.item(2).text().startswith("✓")


def test_a_step_never_blocks_the_window_and_can_be_cancelled(qtbot, gpu_machine: Machine) -> None:  # type: ignore[no-untyped-def]
    runner = gpu_machine.runner
    venv = "/home/lin/.local/share/tingxie/venv"
    venv_works = ["wsl.exe", "-d", "Ubuntu-24.04", "--exec", f"{venv}/bin/python", "-m", "pip",
                  "--version"]  # fmt: skip
    runner.script(venv_works, {"hang": True}, runner.recording("venv_works.out", 0))
    dialog = gpu_machine.dialog(qtbot)
    qtbot.mouseClick(dialog.setup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(runner.hanging), timeout=5000)
    ticks: list[int] = []
    timer = QTimer(dialog)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    qtbot.wait(300)  # the step hangs on its thread; the window keeps running
    timer.stop()
    assert len(ticks) >= 5 and dialog.step_list.item(0).text().startswith("◐")
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.retry.isVisible(), timeout=5000)
    assert runner.hanging[0].ended.is_set(), "the running program was stopped"
    assert "Stopped" in dialog.step_text.text()
    with qtbot.waitSignal(dialog.configured, timeout=20000):
        qtbot.mouseClick(dialog.retry, Qt.MouseButton.LeftButton)


def test_machine_without_wsl_offers_cpu_and_remote(qtbot) -> None:  # type: ignore[no-untyped-def]
    machine = Machine("not_installed")
    try:
        dialog = machine.dialog(qtbot)
        assert dialog.selected_kind() is PathKind.LOCAL_CPU
        assert not dialog.option_buttons[PathKind.WSL_GPU].isEnabled()
        assert (
            "wsl --install"
            in dialog.options_box.itemAt(0)
            .widget()
            .findChildren(  # type: ignore[union-attr]
                type(dialog.findings)
            )[0]
            .text()
        )
        assert "slow" in dialog.option_buttons[PathKind.LOCAL_CPU].text().lower()
    finally:
        machine.close()


def test_remote_server_with_wrong_then_right_token(qtbot, subprocess_env) -> None:  # type: ignore[no-untyped-def]
    proc, port = spawn_fake_server("--token", "sesame", env=subprocess_env)
    machine = Machine("no_wsl_exe")
    try:
        dialog = machine.dialog(qtbot)
        assert dialog.selected_kind() is PathKind.REMOTE  # nothing else is possible here
        dialog.remote_url.setText(f"ws://127.0.0.1:{port}")
        dialog.token.setText("wrong")
        qtbot.mouseClick(dialog.setup_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.retry.isVisible(), timeout=10000)
        assert "refused the token" in dialog.problem.text()
        dialog.back.click()
        dialog.token.setText("sesame")
        with qtbot.waitSignal(dialog.configured, timeout=10000) as done:
            qtbot.mouseClick(dialog.setup_button, Qt.MouseButton.LeftButton)
        settings = done.args[0]
        assert settings.server_url == f"ws://127.0.0.1:{port}" and settings.token == "sesame"
        assert settings.server_configured and not settings.start_server_on_launch
    finally:
        machine.close()
        proc.terminate()
        proc.wait(10)
