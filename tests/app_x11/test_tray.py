"""The real system-tray icon, embedded in a real tray host (trayer) on the X display:
a left click toggles dictation."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.output.x11 import child_env, xdotool

PROBE = Path(__file__).with_name("tray_probe.py")


@pytest.fixture
def tray_host(x11: str) -> Iterator[None]:
    if shutil.which("trayer") is None:
        pytest.skip("no tray host: apt install trayer")
    host = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--width", "10", "--height", "24"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # trayer takes the system-tray selection
    yield
    host.terminate()
    host.wait(5)


def test_left_click_on_the_tray_icon_toggles_dictation(tray_host: None) -> None:
    probe = subprocess.Popen(
        [sys.executable, str(PROBE)],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=PROBE.parents[2],
    )
    try:
        assert probe.stdout is not None
        line = probe.stdout.readline().strip()
        assert line.startswith("ICON "), line
        x, y, w, h = map(int, line.split()[1:5])
        assert w > 0 and h > 0
        assert line.endswith("tingxie — ready (click to dictate, or hold the talk key)")
        xdotool("mousemove", str(x + w // 2), str(y + h // 2))
        xdotool("click", "1")
        assert probe.stdout.readline().strip() == "TOGGLED"
    finally:
        probe.kill()
        probe.wait(5)
