"""The window dictation is meant for: the last real foreground window (Windows).

A click on the tray icon makes the taskbar (``Shell_TrayWnd``) or the overflow flyout
(``NotifyIconOverflowWindow``) the foreground window; typing there would type into the
taskbar. :class:`ForegroundTracker` hears every foreground change
(``EVENT_SYSTEM_FOREGROUND`` through :class:`desktop.win32.shell.ShellThread`) and keeps
the last window that is a real target: not a shell window (:data:`SHELL_CLASSES`), not one
of ours. :meth:`ForegroundTracker.target` is what dictation types into;
:meth:`ForegroundTracker.restore` brings it back to the front after a tray click.

:class:`TargetFocusProbe` is the output side's :class:`desktop.output.focus.FocusProbe`
for Windows built on it: it describes the target instead of whatever is in front.
Pure logic over :class:`WindowApi` (ctypes in :mod:`desktop.win32.native`).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Collection
from typing import Protocol

from desktop.output.focus import FocusInfo, FocusProbe, Win32Api

log = logging.getLogger(__name__)

#: Window classes of the Windows shell that are never a dictation target: the taskbars,
#: the notification-area overflow flyout (Windows 10 and 11), the desktop, popup menus and
#: the Alt+Tab / Task View switchers. Start and Search are not listed: a user may dictate
#: into the search box.
SHELL_CLASSES = frozenset(
    {
        "Shell_TrayWnd",
        "Shell_SecondaryTrayWnd",
        "NotifyIconOverflowWindow",
        "TopLevelWindowForOverflowXamlIsland",
        "Progman",
        "WorkerW",
        "MultitaskingViewFrame",
        "ForegroundStaging",
        "#32768",  # a popup menu (our own tray menu included)
    }
)


class WindowApi(Protocol):
    """The window facts the tracker needs (a recording fake in tests)."""

    def foreground_window(self) -> int: ...
    def root_window(self, hwnd: int) -> int: ...
    def class_name(self, hwnd: int) -> str: ...
    def window_pid(self, hwnd: int) -> int: ...
    def is_window(self, hwnd: int) -> bool: ...
    def set_foreground(self, hwnd: int) -> bool: ...


class ForegroundTracker:
    """Remembers the last real foreground window. Thread-safe: the shell thread reports,
    the Qt thread and the typist ask."""

    def __init__(self, api: WindowApi, own_pid: int, own_windows: Collection[int] = ()) -> None:
        self._api = api
        self._own_pid = own_pid
        self._own_windows = own_windows  # a live collection: windows the app opens later
        self._lock = threading.Lock()
        self._last: int | None = None

    def is_target(self, hwnd: int) -> bool:
        """Whether dictation may type into ``hwnd`` (a top-level window, not the shell's,
        not ours)."""
        if not hwnd or hwnd in self._own_windows:
            return False
        if self._api.class_name(hwnd) in SHELL_CLASSES:
            return False
        return self._api.window_pid(hwnd) != self._own_pid

    def on_foreground(self, hwnd: int) -> None:
        """EVENT_SYSTEM_FOREGROUND: ``hwnd`` came to the front."""
        root = self._api.root_window(hwnd) if hwnd else 0
        if self.is_target(root):
            with self._lock:
                self._last = root

    @property
    def last(self) -> int | None:
        with self._lock:
            return self._last

    def target(self) -> int | None:
        """The window to type into: the foreground window if it is a real target, else
        the last one that was (if it still exists), else None."""
        front = self._api.foreground_window()
        root = self._api.root_window(front) if front else 0
        if self.is_target(root):
            with self._lock:
                self._last = root
            return root
        last = self.last
        if last is not None and self._api.is_window(last):
            return last
        return None

    def restore(self) -> bool:
        """Bring the target back to the front if a shell window (or ours) took it; True if
        the target is in front afterwards."""
        target = self.target()
        if target is None:
            return False
        front = self._api.foreground_window()
        if front and self._api.root_window(front) == target:
            return True
        if not self._api.set_foreground(target):
            log.info("Windows did not let us bring the dictation target back to the front")
            return False
        return True


def describe_window(api: Win32Api, hwnd: int) -> FocusInfo:
    """FocusInfo of ``hwnd`` (as desktop.output.focus.WindowsFocusProbe describes the
    foreground window)."""
    pid = api.window_pid(hwnd) or None
    image = api.process_image(pid) if pid else ""
    return FocusInfo(
        window_id=hwnd,
        pid=pid,
        app=image.replace("\\", "/").rsplit("/", 1)[-1],
        title=api.window_title(hwnd),
        instance=api.class_name(hwnd),
    )


class TargetFocusProbe:
    """A :class:`FocusProbe` that describes the tracked target, not the foreground window:
    after a tray click the typist sees (and checks) the window the user meant."""

    def __init__(self, tracker: ForegroundTracker, api: Win32Api) -> None:
        self._tracker = tracker
        self._api = api

    def current(self) -> FocusInfo | None:
        try:
            target = self._tracker.target()
            return None if target is None else describe_window(self._api, target)
        except Exception:
            log.debug("target window query failed", exc_info=True)
            return None


class TypingTargetProbe:
    """The typist's FocusProbe on Windows: before each final, the target is brought back
    to the front if a shell window (or one of ours) took it, then the window that will
    really receive the keys (the foreground window) is described.

    SendInput types into whatever is in front, so the description is of the foreground
    window even when Windows refused to bring the target back: the typist's own checks
    (our own window, an elevated target) then see where the keys would really go."""

    def __init__(self, tracker: ForegroundTracker, api: Win32Api) -> None:
        self._tracker = tracker
        self._api = api

    def current(self) -> FocusInfo | None:
        try:
            self._tracker.restore()
            front = self._api.foreground_window()
            return describe_window(self._api, front) if front else None
        except Exception:
            log.debug("typing target query failed", exc_info=True)
            return None


def _is_focus_probe(probe: TargetFocusProbe | TypingTargetProbe) -> FocusProbe:
    return probe  # mypy checks that both satisfy FocusProbe


def windows_foreground_tracker(own_windows: Collection[int] = ()) -> ForegroundTracker:
    """The tracker over the real Win32 calls, for this process (Windows only)."""
    native = importlib.import_module("desktop.win32.native")  # by name: exists on Windows
    return ForegroundTracker(native.Win32WindowApi(), os.getpid(), own_windows)


def windows_typing_probe(tracker: ForegroundTracker) -> TypingTargetProbe:
    """The typist's probe over the real Win32 calls (Windows only)."""
    focus = importlib.import_module("desktop.output.focus")
    return TypingTargetProbe(tracker, focus.CtypesWin32Api())
