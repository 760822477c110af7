"""The wheel in the app folder: found by the setup and installed from by default."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from desktop.launcher import ServerLauncher
from desktop.settings import Settings
from desktop.setup.probe import ProbeConfig
from desktop.setup.steps import SetupRun, build_steps
from desktop.setup.wheel import bundled_wheel, wheel_name
from protocol.version import __version__
from tests.setup.recorded import RecordedRunner
from tests.setup.test_steps import Recorder, choice_for

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

APP_FOLDER_WHEEL = rf"C:\Program Files\tingxie\_internal\wheels\{wheel_name()}"


def test_the_wheel_of_this_version_is_found_in_the_bundle_layout(tmp_path: Path) -> None:
    assert bundled_wheel(tmp_path) is None
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "tingxie-0.0.1-py3-none-any.whl").write_bytes(b"PK")
    assert bundled_wheel(tmp_path) is None  # another version's wheel is not ours
    wheel = tmp_path / "wheels" / f"tingxie-{__version__}-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    assert bundled_wheel(tmp_path) == wheel
    assert bundled_wheel() is None  # a source checkout is no bundle


def test_the_install_step_installs_the_app_folders_wheel_into_wsl(
    wsl_machine: tuple[RecordedRunner, ServerLauncher, int],
) -> None:
    runner, launcher, port = wsl_machine
    choice = replace(choice_for(runner, port), wheel=APP_FOLDER_WHEEL)
    target = choice.target
    assert target is not None
    wslpath = ["wsl.exe", "-d", "Ubuntu-24.04", "--exec", "wslpath", "-a", "-u", APP_FOLDER_WHEEL]
    runner.script(wslpath, runner.recording("wslpath_wheel.out", 0))
    uri = f"file:///mnt/c/Program%20Files/tingxie/_internal/wheels/{wheel_name()}"
    pip = target.pip_install(f"tingxie[server,vllm] @ {uri}")
    runner.script(pip, runner.recording("pip_install.out", 0))
    steps = build_steps(choice, launcher)
    assert [s.key for s in steps[:2]] == ["venv", "install"]
    assert SetupRun(steps[:2], runner, Recorder()).run() is None
    assert wslpath in runner.calls and pip in runner.calls
    index = target.pip_install(f"tingxie[server,vllm]=={__version__}")
    assert index not in runner.calls  # not from the package index


def test_the_dialog_offers_the_app_folders_wheel_and_keeps_the_index_as_an_option(
    qtbot,  # type: ignore[no-untyped-def]
) -> None:
    from desktop.ui.first_run import FirstRunDialog

    runner = RecordedRunner("gpu_ubuntu")
    launcher = ServerLauncher(runner, lambda s, d: None)
    config = ProbeConfig(windows=True)
    packaged = FirstRunDialog(Settings(), runner, launcher, config, wheel_file=APP_FOLDER_WHEEL)
    qtbot.addWidget(packaged)
    assert packaged.wheel.text() == APP_FOLDER_WHEEL
    assert "package index" in packaged.wheel.placeholderText()  # cleared: the index
    from_source = FirstRunDialog(Settings(), runner, launcher, config)
    qtbot.addWidget(from_source)
    assert from_source.wheel.text() == ""  # no app folder here: nothing to offer
