"""Single instance (named mutex) and start at login (the HKCU Run value)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from desktop.win32.instance import SingleInstance, mutex_name
from desktop.win32.login import RUN_KEY, VALUE_NAME, StartAtLogin, login_command
from tests.win32.fake_shell import FakeMutexApi


def test_mutex_lives_in_the_session_namespace() -> None:
    assert mutex_name("tingxie-0123456789ab") == "Local\\tingxie-0123456789ab"
    with pytest.raises(ValueError):
        mutex_name("Global\\x")


def test_second_instance_sees_the_mutex_and_the_first_keeps_it() -> None:
    api = FakeMutexApi()
    first, second = SingleInstance(api), SingleInstance(api)
    assert first.acquire("tingxie-abc") is True
    assert first.handle != 0
    assert second.acquire("tingxie-abc") is False
    assert second.handle == 0
    assert api.calls == ["Local\\tingxie-abc", "Local\\tingxie-abc"]
    # another user or settings folder is another instance key
    assert SingleInstance(api).acquire("tingxie-def") is True


def test_a_failed_mutex_does_not_stop_the_app() -> None:
    api = FakeMutexApi(fail=True)
    assert SingleInstance(api).acquire("tingxie-abc") is True


@dataclass
class FakeRegistry:
    values: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def get(self, key: str, name: str) -> str | None:
        return self.values.get((key, name))

    def set(self, key: str, name: str, value: str) -> None:
        self.calls.append(("set", key, name, value))
        self.values[(key, name)] = value

    def delete(self, key: str, name: str) -> None:
        self.calls.append(("delete", key, name))
        self.values.pop((key, name), None)


def test_start_at_login_writes_and_removes_the_run_value() -> None:
    reg = FakeRegistry()
    toggle = StartAtLogin(reg, r'"C:\Program Files\tingxie\tingxie.exe"')
    assert not toggle.enabled
    toggle.apply(True)
    toggle.apply(True)  # already there: not written again
    assert toggle.enabled
    toggle.apply(False)
    toggle.apply(False)  # already gone: nothing to delete
    assert not toggle.enabled
    assert reg.calls == [
        (
            "set",
            r"Software\Microsoft\Windows\CurrentVersion\Run",
            "tingxie",
            r'"C:\Program Files\tingxie\tingxie.exe"',
        ),
        ("delete", RUN_KEY, VALUE_NAME),
    ]


def test_a_moved_install_rewrites_the_value() -> None:
    reg = FakeRegistry({(RUN_KEY, VALUE_NAME): r"C:\old\tingxie.exe"})
    StartAtLogin(reg, r"C:\new\tingxie.exe").apply(True)
    assert reg.values[(RUN_KEY, VALUE_NAME)] == r"C:\new\tingxie.exe"


def test_login_command_lines() -> None:
    assert (
        login_command(r"C:\Program Files\tingxie\tingxie.exe", frozen=True)
        == r'"C:\Program Files\tingxie\tingxie.exe"'
    )
    # a source install starts without a console window
    assert (
        login_command(r"C:\Users\me\venv\Scripts\python.exe", frozen=False)
        == r"C:\Users\me\venv\Scripts\pythonw.exe -m desktop.app"
    )


def test_a_mutex_we_may_not_open_counts_as_another_instance() -> None:
    class Denied:
        def create_mutex(self, name: str) -> tuple[int, bool]:
            return 0, True  # ERROR_ACCESS_DENIED: an elevated instance holds it

    assert SingleInstance(Denied()).acquire("tingxie-abc") is False


def test_second_instance_stops_before_opening_the_log(tmp_path: Path) -> None:
    """main() asks the mutex first: a second instance writes no log and exits 0."""
    code = (
        "import sys\n"
        "import desktop.app as app\n"
        "app.acquire_single_instance = lambda key: False  # as if the mutex existed\n"
        "sys.exit(app.main(['--settings-dir', sys.argv[1]]))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "settings")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "already running" in out.stderr
    assert not (tmp_path / "settings" / "logs").exists()
