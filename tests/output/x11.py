"""Helpers for the real-X11 tests: the Xvfb display of pytest-xvfb, a window manager,
the target window process, xclip.

These tests inject real key events into the display, so they only run on the virtual
display pytest-xvfb starts, never on a developer's real desktop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

TARGET_SCRIPT = Path(__file__).with_name("target_window.py")
ROOT = Path(__file__).parents[2]


def require_virtual_x11(request: pytest.FixtureRequest) -> str:
    """The display to use, or skip with the precise reason."""
    has_plugin = request.config.pluginmanager.hasplugin("xvfb")
    xvfb: Any = request.getfixturevalue("xvfb") if has_plugin else None
    if xvfb is None:
        pytest.skip(
            "needs pytest-xvfb's virtual X display (pip install pytest-xvfb, Xvfb); "
            "these tests inject keys and must not run on a real desktop"
        )
    missing = [t for t in ("xdotool", "xclip", "xprop") if shutil.which(t) is None]
    if missing:
        pytest.skip(
            f"missing X11 tools: {', '.join(missing)} (apt install xdotool xclip x11-utils)"
        )
    return os.environ["DISPLAY"]


def child_env() -> dict[str, str]:
    """Environment for Qt child processes on the X display (xcb, not offscreen)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    env.update(
        QT_QPA_PLATFORM="xcb",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
    )
    return env


def _wm_running() -> bool:
    """A window manager answers: the root names its check window, and that window exists
    (a window manager that died can leave the root's property behind)."""
    out = subprocess.run(
        ["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"], capture_output=True, text=True, check=False
    )
    if "window id" not in out.stdout:
        return False
    check_window = out.stdout.split("#")[-1].strip().split(",")[0]
    alive = subprocess.run(
        ["xprop", "-id", check_window, "_NET_WM_NAME"], capture_output=True, text=True, check=False
    )
    return alive.returncode == 0


@contextmanager
def window_manager() -> Iterator[None]:
    """Openbox for focus and stacking, unless a window manager already runs."""
    if _wm_running() or shutil.which("openbox") is None:
        yield
        return
    proc = subprocess.Popen(
        ["openbox", "--sm-disable"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30  # generous: CI machines can be slow to start it
        while not _wm_running():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("openbox did not start on the virtual display")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(5)


def window_manager_caught_up(timeout_s: float = 60) -> None:
    """Returns once the window manager has handled what was sent before: it changes the
    number of desktops when asked, in order. After many keyboard-map changes (each makes
    it reload the map and grab its keys again) it lags seconds behind, and it would not
    stop in time when told to."""

    def desktops() -> int:
        out = subprocess.run(
            ["xdotool", "get_num_desktops"], capture_output=True, text=True, check=True, timeout=5
        )
        return int(out.stdout)

    count = desktops()
    for n in (count + 1, count):
        subprocess.run(["xdotool", "set_num_desktops", str(n)], check=True, timeout=5)
        deadline = time.monotonic() + timeout_s
        while desktops() != n:
            if time.monotonic() > deadline:
                raise RuntimeError("the window manager never caught up")
            time.sleep(0.05)


class TargetWindow:
    """tests/output/target_window.py in a separate process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(TARGET_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
            encoding="utf-8",
        )
        line = self._line(timeout=15)
        tag, pid, wid = line.split()
        assert tag == "READY", line
        self.pid, self.window_id = int(pid), int(wid)

    def _line(self, timeout: float = 5) -> str:
        assert self.proc.stdout is not None
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"target window silent for {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"target window exited ({self.proc.poll()})")
        return line.strip()

    def command(self, cmd: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._line()

    def text(self) -> str:
        reply = self.command("text")
        assert reply.startswith("TEXT "), reply
        return str(json.loads(reply[5:]))

    def wait_text(self, expected: str, timeout: float = 3.0) -> str:
        """The text once it equals ``expected`` (or whatever it is after ``timeout``)."""
        deadline = time.monotonic() + timeout
        text = self.text()
        while text != expected and time.monotonic() < deadline:
            time.sleep(0.02)
            text = self.text()
        return text

    def reset(self) -> None:
        assert self.command("clear") == "OK"
        assert self.command("focus") == "OK"

    def close(self) -> None:
        if self.proc.poll() is None:
            with suppress(AssertionError, OSError):
                self.command("quit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def xclip_set(data: bytes, target: str = "UTF8_STRING") -> None:
    subprocess.run(
        ["xclip", "-selection", "clipboard", "-i", "-t", target],
        input=data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=5,
    )


def xclip_get(target: str = "UTF8_STRING") -> bytes | None:
    out = subprocess.run(
        ["xclip", "-selection", "clipboard", "-o", "-t", target],
        capture_output=True,
        check=False,
        timeout=5,
    )
    return out.stdout if out.returncode == 0 else None


def xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=5)
