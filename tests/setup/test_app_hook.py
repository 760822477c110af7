"""The tray app opens the first-run setup only while no server is configured."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from desktop.settings import Settings
from desktop.ui.settings_dialog import SettingsDialog

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def wait_for(log: Path, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        content = log.read_text(encoding="utf-8") if log.exists() else ""
        if text in content:
            return content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log:\n{content[-3000:]}")


def test_fresh_install_opens_the_setup_and_finds_out_what_this_pc_can_do(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    env.update(QT_QPA_PLATFORM="offscreen", XDG_DATA_HOME=str(tmp_path / "data"))
    settings = tmp_path / "settings"  # empty: nothing configured yet
    app = subprocess.Popen(
        [sys.executable, "-m", "desktop.app", "--settings-dir", str(settings), "--no-tray"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        content = wait_for(settings / "logs" / "tingxie.log", "first run: ")
    finally:
        app.terminate()
        app.wait(10)
    assert "no server configured yet: opening the first-run setup" in content
    # On Linux there is no WSL: the setup says so and offers the CPU server or a remote one.
    assert "recommended local_cpu" in content or "recommended remote" in content


def test_settings_dialog_offers_the_setup_again_and_counts_a_typed_server(qtbot) -> None:  # type: ignore[no-untyped-def]
    fresh = Settings()
    dialog = SettingsDialog(fresh)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.setup_requested, timeout=1000):
        dialog.run_setup.click()
    assert dialog.current().server_configured is False  # nothing about the server changed
    dialog.server_url.setText("ws://10.0.0.7:8765")
    assert dialog.current().server_configured is True
    done = SettingsDialog(replace(fresh, server_configured=True))
    qtbot.addWidget(done)
    assert done.current().server_configured is True
