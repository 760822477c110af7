"""One tingxie per user session on Windows: a named mutex taken first thing in main().

Qt's ``QLocalServer`` on Windows is a named pipe, and a second ``listen()`` on the same
name succeeds, so it cannot tell a second instance that one is running (two hotkey
listeners would type every utterance twice). A named mutex can: ``CreateMutexW`` on a
name that exists returns a handle to the existing mutex and sets
``ERROR_ALREADY_EXISTS``. The name lives in the ``Local\\`` namespace (this session) and
carries the per-user, per-settings-folder key of :func:`desktop.app.instance_name`.
The mutex is held (never closed) for the life of the process; Windows frees it on exit.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Protocol

log = logging.getLogger(__name__)


class MutexApi(Protocol):
    def create_mutex(self, name: str) -> tuple[int, bool]:
        """``(handle, already_existed)``; handle 0 when the call failed. A mutex that
        exists but may not be opened (ERROR_ACCESS_DENIED) counts as existing."""
        ...


def mutex_name(instance_key: str) -> str:
    """The session-local mutex name for one instance key (``tingxie-<hash>``)."""
    if "\\" in instance_key:
        raise ValueError("a mutex name may not contain a backslash after its namespace")
    return "Local\\" + instance_key


class SingleInstance:
    """Holds the mutex once :meth:`acquire` returned True."""

    def __init__(self, api: MutexApi) -> None:
        self._api = api
        self.handle = 0

    def acquire(self, instance_key: str) -> bool:
        """True: we are the first instance (or the check could not be made: better two
        instances than none). False: another instance of this user holds it."""
        handle, existed = self._api.create_mutex(mutex_name(instance_key))
        if existed:  # also when it exists but we may not open it (an elevated instance)
            return False
        if not handle:
            log.warning("cannot create the single-instance mutex; not checking")
            return True
        self.handle = handle  # kept open: Windows releases it when the process ends
        return True


def acquire_single_instance(instance_key: str) -> bool:
    """On Windows, take the mutex; elsewhere always True (QLocalServer decides there)."""
    if sys.platform != "win32":
        return True
    # imported by name: the ctypes layer exists only on Windows (and mypy runs on Linux)
    native = importlib.import_module("desktop.win32.native")
    guard = SingleInstance(native.Win32MutexApi())
    if guard.acquire(instance_key):
        _held.append(guard)
        return True
    return False


_held: list[SingleInstance] = []  # the process's own guard, alive until exit
