"""Settings on Windows: WSL list off the UI thread, start at login, warm mic; native
crashes land in the log folder."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from desktop.launcher import Captured
from desktop.settings import Settings
from desktop.win32.wsl_distros import (
    LIST_COMMAND,
    DistroLister,
    distros_from,
    list_distros,
)

NAMES_UTF16 = "Ubuntu-24.04\r\ndocker-desktop\r\n".encode("utf-16-le")


class Runner:
    def __init__(self, result: Captured) -> None:
        self.result = result
        self.calls: list[tuple[list[str], float]] = []
        self.thread: threading.Thread | None = None

    def capture(self, argv: list[str], timeout: float) -> Captured:
        self.calls.append((argv, timeout))
        self.thread = threading.current_thread()
        return self.result


def test_names_only_from_a_clean_exit() -> None:
    assert distros_from(Captured(0, NAMES_UTF16)) == ["Ubuntu-24.04", "docker-desktop"]
    assert distros_from(Captured(0, b"Ubuntu\n")) == ["Ubuntu"]  # WSL_UTF8=1 output
    # wsl.exe explains a failure on stdout; that text must never become names
    no_distros = "Windows Subsystem for Linux has no installed distributions.\r\n"
    assert distros_from(Captured(-1, no_distros.encode("utf-16-le"))) == []
    assert distros_from(Captured(1, b"Ubuntu\n", errors=b"update required")) == []
    assert distros_from(Captured(-1, b"", "cannot run wsl.exe: not found")) == []
    assert distros_from(Captured(-1, b"Ubu", "wsl.exe did not finish within 10 s")) == []


def test_the_list_runs_on_a_worker_thread() -> None:
    runner = Runner(Captured(0, NAMES_UTF16))
    got: list[list[str]] = []
    lister = DistroLister(runner, got.append)
    lister.start()
    assert lister.thread is not None
    lister.thread.join(5)
    assert got == [["Ubuntu-24.04", "docker-desktop"]]
    assert runner.calls == [(["wsl.exe", "-l", "-q"], 10.0)]
    assert runner.thread is not threading.main_thread()
    assert list(LIST_COMMAND) == ["wsl.exe", "-l", "-q"]


def test_a_failing_runner_gives_an_empty_list() -> None:
    class Broken:
        def capture(self, argv: list[str], timeout: float) -> Captured:
            raise RuntimeError("boom")

    got: list[list[str]] = []
    lister = DistroLister(Broken(), got.append)
    lister.start()
    assert lister.thread is not None
    lister.thread.join(5)
    assert got == [[]]
    assert list_distros(Runner(Captured(0, b""))) == []


def test_dialog_fills_distros_later_and_keeps_the_choice(qtbot) -> None:
    from desktop.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(wsl_distro="Debian"))
    qtbot.addWidget(dialog)
    assert dialog.wsl_distro.currentText() == "Debian"
    dialog.set_wsl_distros(["Ubuntu-24.04", "docker-desktop"])
    items = [dialog.wsl_distro.itemText(i) for i in range(dialog.wsl_distro.count())]
    assert items == ["", "Ubuntu-24.04", "docker-desktop"]
    assert dialog.wsl_distro.currentText() == "Debian"  # typed by hand: kept


def test_dialog_start_at_login_and_warm_mic(qtbot) -> None:
    from desktop.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(), can_start_at_login=True)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.start_at_login.isVisible()
    assert not dialog.start_at_login.isChecked() and not dialog.warm_mic.isChecked()
    dialog.start_at_login.setChecked(True)
    dialog.warm_mic.setChecked(True)
    s = dialog.current()
    assert s.start_at_login and s.warm_mic
    elsewhere = SettingsDialog(Settings(start_at_login=True))
    qtbot.addWidget(elsewhere)
    elsewhere.show()
    assert not elsewhere.start_at_login.isVisible()  # no Run key off Windows
    assert elsewhere.current().start_at_login  # and the stored value is left alone


def test_native_crash_is_written_to_the_log_folder(tmp_path: Path) -> None:
    code = (
        "import ctypes, pathlib, sys\n"
        "from desktop.app import enable_faulthandler\n"
        "print(enable_faulthandler(pathlib.Path(sys.argv[1])), flush=True)\n"
        "ctypes.string_at(0)\n"  # a null pointer read: SIGSEGV / access violation
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode != 0
    assert Path(out.stdout.strip()) == tmp_path / "native-crashes.log"
    text = (tmp_path / "native-crashes.log").read_text()
    assert "Fatal Python error" in text and "string_at" in text
