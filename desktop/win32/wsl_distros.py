"""The WSL distributions for the Settings dialog: ``wsl.exe -l -q``, off the UI thread.

The launcher's runner starts it (no console window: ``CREATE_NO_WINDOW``; ``WSL_UTF8=1``;
stdout and stderr apart), with a time limit. Only a clean exit's stdout is read as names:
on failure wsl.exe prints an explanation ("Windows Subsystem for Linux has no installed
distributions...", an update prompt), which must never turn into distribution names.
:class:`DistroLister` runs it on a worker thread and hands the list to a callback, which
a Qt caller connects to its thread with a queued signal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from desktop.launcher import WSL_EXE, Captured, parse_wsl_distros

log = logging.getLogger(__name__)

LIST_COMMAND = (WSL_EXE, "-l", "-q")
LIST_TIMEOUT_S = 10.0


class Capturer(Protocol):
    def capture(self, argv: list[str], timeout: float) -> Captured: ...


def distros_from(result: Captured) -> list[str]:
    """Distribution names from a finished ``wsl.exe -l -q``; [] unless it succeeded."""
    if result.launch_error:
        log.info("wsl.exe -l -q: %s", result.launch_error)
        return []
    if result.returncode != 0:
        log.info("wsl.exe -l -q exited with %d; no distributions listed", result.returncode)
        return []
    return parse_wsl_distros(result.output)


def list_distros(runner: Capturer) -> list[str]:
    return distros_from(runner.capture(list(LIST_COMMAND), LIST_TIMEOUT_S))


class DistroLister:
    """Lists distributions on a daemon thread; ``on_done`` gets the list there."""

    def __init__(self, runner: Capturer, on_done: Callable[[list[str]], None]) -> None:
        self._runner = runner
        self._on_done = on_done
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="wsl-list", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            names = list_distros(self._runner)
        except Exception:
            log.exception("listing WSL distributions failed")
            names = []
        self._on_done(names)
