"""Start at login: the ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`` value.

A value under this key names a command line Windows runs when this user logs on (per
user, no administrator rights). tingxie writes one value, ``tingxie``, holding the quoted
path of the running executable (the frozen ``tingxie.exe``, or ``pythonw.exe -m desktop``
from a source install), and deletes it when the toggle is turned off. The registry is
reached through :class:`RegistryApi` (``winreg`` in :class:`WinregApi`), so the logic is
tested with a fake.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import PureWindowsPath
from typing import Any, Protocol

log = logging.getLogger(__name__)

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
VALUE_NAME = "tingxie"


class RegistryApi(Protocol):
    """String values of one HKEY_CURRENT_USER key."""

    def get(self, key: str, name: str) -> str | None: ...
    def set(self, key: str, name: str, value: str) -> None: ...
    def delete(self, key: str, name: str) -> None: ...


def login_command(executable: str, frozen: bool, extra_args: Sequence[str] = ()) -> str:
    """The command line to start at login: the bundled exe, or the windowless Python
    running the app module (a console ``python.exe`` would open a window at every login)."""
    if frozen:
        argv = [executable, *extra_args]
    else:
        exe = PureWindowsPath(executable)  # a Windows path on every platform (tests)
        if exe.name.lower() == "python.exe":
            exe = exe.with_name("pythonw.exe")
        argv = [str(exe), "-m", "desktop.app", *extra_args]
    return subprocess.list2cmdline(argv)


def current_login_command() -> str:
    return login_command(sys.executable, bool(getattr(sys, "frozen", False)))


class StartAtLogin:
    def __init__(self, registry: RegistryApi, command: str) -> None:
        self._registry = registry
        self._command = command

    @property
    def enabled(self) -> bool:
        """True when our value is there (whatever command it holds)."""
        return self._registry.get(RUN_KEY, VALUE_NAME) is not None

    def apply(self, enabled: bool) -> None:
        """Write or remove the value. A value that already holds this command is left as
        it is; one pointing elsewhere (a moved install) is rewritten."""
        current = self._registry.get(RUN_KEY, VALUE_NAME)
        if enabled:
            if current != self._command:
                self._registry.set(RUN_KEY, VALUE_NAME, self._command)
                log.info("start at login: on (%s)", self._command)
        elif current is not None:
            self._registry.delete(RUN_KEY, VALUE_NAME)
            log.info("start at login: off")


def _winreg() -> Any:
    import winreg  # Windows only; typed Any so the module type-checks on every platform

    return winreg


class WinregApi:
    """HKEY_CURRENT_USER through the standard library's winreg (Windows only)."""

    def get(self, key: str, name: str) -> str | None:
        reg = _winreg()
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, key) as k:
                value, _kind = reg.QueryValueEx(k, name)
        except FileNotFoundError:
            return None
        return str(value)

    def set(self, key: str, name: str, value: str) -> None:
        reg = _winreg()
        with reg.CreateKey(reg.HKEY_CURRENT_USER, key) as k:
            reg.SetValueEx(k, name, 0, reg.REG_SZ, value)

    def delete(self, key: str, name: str) -> None:
        reg = _winreg()
        try:
            with reg.OpenKey(reg.HKEY_CURRENT_USER, key, 0, reg.KEY_SET_VALUE) as k:
                reg.DeleteValue(k, name)
        except FileNotFoundError:
            pass


def start_at_login() -> StartAtLogin | None:
    """The toggle for this install on Windows; None elsewhere."""
    if sys.platform != "win32":
        return None
    return StartAtLogin(WinregApi(), current_login_command())
