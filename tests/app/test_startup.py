"""``tingxie`` starts like a desktop app: --version, one instance, a log file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from protocol.version import __version__

APP = [sys.executable, "-m", "desktop.app"]


def app_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def test_version() -> None:
    out = subprocess.run([*APP, "--version"], capture_output=True, text=True, env=app_env())
    assert out.returncode == 0 and out.stdout.strip() == f"tingxie {__version__}"


def test_second_instance_hands_over_and_exits(tmp_path: Path) -> None:
    settings = tmp_path / "settings"
    settings.mkdir()
    # No server is listening there: the app must still start (and say it is offline).
    (settings / "tingxie.ini").write_text(
        "[General]\nserver_url=ws://127.0.0.1:9\nmode=hands_free\n"
    )
    first = subprocess.Popen(
        [*APP, "--settings-dir", str(settings), "--no-tray"],
        env=app_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = settings / "logs" / "tingxie.log"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists() and "client state: unreachable" in log.read_text():
                break
            time.sleep(0.1)
        assert "client state: unreachable" in log.read_text()
        second = subprocess.run(
            [*APP, "--settings-dir", str(settings)],
            env=app_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 0
        assert "already running" in second.stderr
        assert first.poll() is None, "the first instance keeps running"
        if os.name != "nt":  # the log may hold what was said (debug option): owner only
            assert (log.parent.stat().st_mode & 0o777) == 0o700
    finally:
        first.terminate()
        first.wait(10)
