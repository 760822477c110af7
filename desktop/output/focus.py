"""Which window has keyboard focus: ids, owning process, application names, title.

Implementations:

* :class:`X11FocusProbe` uses **python-xlib** (pynput's own X11 dependency, so it is
  always there when pynput works on X11). One persistent connection answers in well under
  a millisecond per query; ``xdotool getwindowfocus`` + ``xprop`` would fork two processes
  per utterance (~5–10 ms) and add runtime dependencies the Windows build never needs.
  Keys go to the X *input focus*, so we start there and walk up to the top-level client
  window (the one with ``WM_CLASS``); when the focus is ``PointerRoot``/``None`` or a frame
  of the window manager, ``_NET_ACTIVE_WINDOW`` (EWMH) is used instead. The pid comes from
  ``_NET_WM_PID``.
* :class:`WindowsFocusProbe` uses ctypes: ``GetForegroundWindow``,
  ``GetWindowThreadProcessId``, ``GetClassNameW``, ``GetWindowTextW`` and
  ``QueryFullProcessImageNameW``. The Win32 calls sit behind :class:`Win32Api` so the
  composition is unit-tested here with a fake; the ctypes layer has not run on Windows.
* :class:`NullFocusProbe`: focus unknown (e.g. Wayland without X).

:func:`is_own_window` is how the typist avoids typing into the app's own windows.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FocusInfo:
    """The focused top-level window.

    ``app``: X11 WM_CLASS class (``"Gnome-terminal"``), Windows executable name
    (``"WindowsTerminal.exe"``). ``instance``: X11 WM_CLASS instance, Windows window class.
    Any field may be unknown (None / empty).
    """

    window_id: int | None
    pid: int | None
    app: str
    title: str
    instance: str = ""

    @property
    def app_names(self) -> tuple[str, ...]:
        """The names a per-application override may match, most specific first."""
        return tuple(n for n in (self.app, self.instance) if n)


class FocusProbe(Protocol):
    def current(self) -> FocusInfo | None:
        """The focused window now, or None if unknown. Never raises."""
        ...


def is_own_window(
    info: FocusInfo | None, own_pid: int, own_window_ids: Collection[int] = ()
) -> bool:
    """True if ``info`` is one of our windows (same pid, or a known window id of ours).

    Unknown focus (None) is not ours: the app cannot tell, and refusing to type whenever
    the platform cannot say would make typing fail on every such platform.
    """
    if info is None:
        return False
    if info.pid is not None and info.pid == own_pid:
        return True
    return info.window_id is not None and info.window_id in own_window_ids


class NullFocusProbe:
    def current(self) -> FocusInfo | None:
        return None


# --- X11 -------------------------------------------------------------------------------


class X11FocusProbe:
    """Focus on an X11 display via python-xlib. Thread-safe (one lock per connection)."""

    def __init__(self, display: str | None = None) -> None:
        # lazy: needs an X server only when used
        from Xlib import display as xdisplay  # type: ignore[import-untyped,unused-ignore]

        self._display = xdisplay.Display(display)
        self._lock = threading.Lock()
        d = self._display
        self._atoms = {
            name: d.intern_atom(name)
            for name in ("_NET_ACTIVE_WINDOW", "_NET_WM_PID", "_NET_WM_NAME", "UTF8_STRING")
        }

    def close(self) -> None:
        with self._lock:
            self._display.close()

    def current(self) -> FocusInfo | None:
        with self._lock:
            try:
                return self._current()
            except Exception:  # an X error (window vanished mid-query) means "unknown"
                log.debug("focus query failed", exc_info=True)
                return None

    def _current(self) -> FocusInfo | None:
        d = self._display
        root = d.screen().root
        focus = d.get_input_focus().focus
        window = None
        if not isinstance(focus, int) and focus.id != root.id:
            window = self._client_of(focus, root.id)
        if window is None:
            active = root.get_full_property(self._atoms["_NET_ACTIVE_WINDOW"], 0)
            if active is not None and len(active.value) and int(active.value[0]):
                window = self._client_of(
                    d.create_resource_object("window", int(active.value[0])), root.id
                )
        if window is None:
            return None
        return self._describe(window)

    def _client_of(self, window: Any, root_id: int) -> Any | None:
        """The nearest window at or above ``window`` that has WM_CLASS (a client window)."""
        w = window
        for _ in range(32):
            if w.get_wm_class() is not None:
                return w
            parent = w.query_tree().parent
            if isinstance(parent, int) or parent.id in (0, root_id):
                return None
            w = parent
        return None

    def _describe(self, window: Any) -> FocusInfo:
        wm_class = window.get_wm_class() or ("", "")
        pid_prop = window.get_full_property(self._atoms["_NET_WM_PID"], 0)
        pid = int(pid_prop.value[0]) if pid_prop is not None and len(pid_prop.value) else None
        title = ""
        name = window.get_full_property(self._atoms["_NET_WM_NAME"], self._atoms["UTF8_STRING"])
        if name is not None and name.value:
            raw = name.value
            title = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        else:
            legacy = window.get_wm_name()
            title = legacy.decode("latin-1") if isinstance(legacy, bytes) else (legacy or "")
        return FocusInfo(
            window_id=int(window.id),
            pid=pid,
            app=wm_class[1] or "",
            title=title,
            instance=wm_class[0] or "",
        )


# --- Windows ---------------------------------------------------------------------------


class Win32Api(Protocol):
    """The few Win32 calls the Windows probe needs (a fake in tests)."""

    def foreground_window(self) -> int: ...
    def window_pid(self, hwnd: int) -> int: ...
    def class_name(self, hwnd: int) -> str: ...
    def window_title(self, hwnd: int) -> str: ...
    def process_image(self, pid: int) -> str: ...


class CtypesWin32Api:
    """Win32 through ctypes. Not run here (no Windows machine); kept deliberately thin."""

    PROCESS_QUERY_LIMITED_INFORMATION = 0x1000

    def __init__(self) -> None:
        import ctypes
        from ctypes import wintypes

        self._ctypes = ctypes
        self._wintypes = wintypes
        windll = ctypes.windll  # type: ignore[attr-defined,unused-ignore]
        self._user32 = windll.user32
        self._kernel32 = windll.kernel32
        self._user32.GetForegroundWindow.restype = wintypes.HWND
        self._user32.GetWindowThreadProcessId.argtypes = [
            wintypes.HWND,
            ctypes.POINTER(wintypes.DWORD),
        ]
        self._user32.GetWindowThreadProcessId.restype = wintypes.DWORD
        self._user32.GetClassNameW.argtypes = [wintypes.HWND, wintypes.LPWSTR, ctypes.c_int]
        self._user32.GetWindowTextW.argtypes = [wintypes.HWND, wintypes.LPWSTR, ctypes.c_int]
        self._user32.GetWindowTextLengthW.argtypes = [wintypes.HWND]
        self._kernel32.OpenProcess.restype = wintypes.HANDLE
        self._kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
        self._kernel32.QueryFullProcessImageNameW.argtypes = [
            wintypes.HANDLE,
            wintypes.DWORD,
            wintypes.LPWSTR,
            ctypes.POINTER(wintypes.DWORD),
        ]
        self._kernel32.CloseHandle.argtypes = [wintypes.HANDLE]

    def foreground_window(self) -> int:
        return int(self._user32.GetForegroundWindow() or 0)

    def window_pid(self, hwnd: int) -> int:
        pid = self._wintypes.DWORD(0)
        self._user32.GetWindowThreadProcessId(hwnd, self._ctypes.byref(pid))
        return int(pid.value)

    def class_name(self, hwnd: int) -> str:
        buf = self._ctypes.create_unicode_buffer(256)
        self._user32.GetClassNameW(hwnd, buf, 256)
        return str(buf.value)

    def window_title(self, hwnd: int) -> str:
        n = int(self._user32.GetWindowTextLengthW(hwnd))
        buf = self._ctypes.create_unicode_buffer(n + 1)
        self._user32.GetWindowTextW(hwnd, buf, n + 1)
        return str(buf.value)

    def process_image(self, pid: int) -> str:
        handle = self._kernel32.OpenProcess(self.PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            return ""
        try:
            size = self._wintypes.DWORD(32768)
            buf = self._ctypes.create_unicode_buffer(size.value)
            if not self._kernel32.QueryFullProcessImageNameW(
                handle, 0, buf, self._ctypes.byref(size)
            ):
                return ""
            return str(buf.value)
        finally:
            self._kernel32.CloseHandle(handle)


class WindowsFocusProbe:
    """The foreground window on Windows (``GetForegroundWindow``)."""

    def __init__(self, api: Win32Api | None = None) -> None:
        self._api = api if api is not None else CtypesWin32Api()

    def current(self) -> FocusInfo | None:
        try:
            hwnd = self._api.foreground_window()
            if not hwnd:
                return None  # e.g. the secure desktop (UAC) or a window being destroyed
            pid = self._api.window_pid(hwnd) or None
            image = self._api.process_image(pid) if pid else ""
            exe = image.replace("\\", "/").rsplit("/", 1)[-1]
            return FocusInfo(
                window_id=hwnd,
                pid=pid,
                app=exe,
                title=self._api.window_title(hwnd),
                instance=self._api.class_name(hwnd),
            )
        except Exception:
            log.debug("foreground window query failed", exc_info=True)
            return None


def default_focus_probe() -> FocusProbe:
    """The probe for this platform; :class:`NullFocusProbe` if none can work."""
    if sys.platform == "win32":
        return WindowsFocusProbe()
    if os.environ.get("DISPLAY"):
        try:
            return X11FocusProbe()
        except Exception:
            log.warning(
                "cannot open X display %r for focus queries",
                os.environ.get("DISPLAY"),
                exc_info=True,
            )
    return NullFocusProbe()
