"""ctypes implementations of the shell seams (:class:`desktop.win32.shell.ShellApi`,
:class:`desktop.win32.foreground.WindowApi`, :class:`desktop.win32.instance.MutexApi`).

Windows only; kept as thin as possible: every decision is made above, in code tested on
Linux against recording fakes. This module has not run on Windows (docs/windows.md).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from ctypes import wintypes
from typing import Any

from desktop.win32 import api
from desktop.win32.shell import WM_QUIT, MessageHandler

log = logging.getLogger(__name__)


def _last_error() -> int:
    return int(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]


class Win32ShellApi:
    """The shell thread's Win32 calls. One instance per shell thread."""

    pointer_size = ctypes.sizeof(ctypes.c_void_p)
    _class_count = 0

    def __init__(self) -> None:
        self._wndproc: Any = None  # the ctypes callbacks must outlive the window / hook
        self._event_proc: Any = None
        self._class_name = ""

    def create_message_window(self, on_message: MessageHandler) -> int:
        def wndproc(hwnd: int, msg: int, wparam: int, lparam: int) -> int:
            if on_message(int(msg), int(wparam or 0), int(lparam or 0)):
                return 0
            return int(api.DefWindowProcW(hwnd, msg, wparam, lparam))

        self._wndproc = api.WNDPROC(wndproc)
        Win32ShellApi._class_count += 1
        self._class_name = f"tingxie-shell-{Win32ShellApi._class_count}"
        wc = api.WNDCLASSW()
        wc.lpfnWndProc = self._wndproc
        wc.hInstance = api.GetModuleHandleW(None)
        wc.lpszClassName = self._class_name
        if not api.RegisterClassW(ctypes.byref(wc)):
            raise ctypes.WinError(_last_error())  # type: ignore[attr-defined,unused-ignore]
        hwnd = api.CreateWindowExW(
            0,
            self._class_name,
            "tingxie",
            0,
            0,
            0,
            0,
            0,
            api.HWND_MESSAGE,
            None,
            wc.hInstance,
            None,
        )
        if not hwnd:
            raise ctypes.WinError(_last_error())  # type: ignore[attr-defined,unused-ignore]
        return int(hwnd)

    def destroy_window(self, hwnd: int) -> None:
        api.DestroyWindow(hwnd)

    def register_raw_keyboard(self, hwnd: int) -> bool:
        device = api.RAWINPUTDEVICE(
            api.HID_USAGE_PAGE_GENERIC, api.HID_USAGE_GENERIC_KEYBOARD, api.RIDEV_INPUTSINK, hwnd
        )
        ok = bool(api.RegisterRawInputDevices(ctypes.byref(device), 1, ctypes.sizeof(device)))
        if not ok:
            log.error("RegisterRawInputDevices failed (error %d)", _last_error())
        return ok

    def raw_input_data(self, lparam: int) -> bytes:
        header = ctypes.sizeof(ctypes.c_uint32) * 2 + 2 * self.pointer_size
        size = wintypes.UINT(0)
        api.GetRawInputData(lparam, api.RID_INPUT, None, ctypes.byref(size), header)
        if not size.value:
            return b""
        buf = ctypes.create_string_buffer(size.value)
        got = api.GetRawInputData(lparam, api.RID_INPUT, buf, ctypes.byref(size), header)
        if got == 0xFFFFFFFF:
            return b""
        return buf.raw[:got]

    def register_session_notification(self, hwnd: int) -> bool:
        return bool(api.WTSRegisterSessionNotification(hwnd, api.NOTIFY_FOR_THIS_SESSION))

    def unregister_session_notification(self, hwnd: int) -> None:
        api.WTSUnRegisterSessionNotification(hwnd)

    def register_hotkey(self, hwnd: int, hotkey_id: int, modifiers: int, vk: int) -> bool:
        return bool(api.RegisterHotKey(hwnd, hotkey_id, modifiers, vk))

    def unregister_hotkey(self, hwnd: int, hotkey_id: int) -> None:
        api.UnregisterHotKey(hwnd, hotkey_id)

    def hook_foreground(self, on_foreground: Callable[[int], None]) -> int:
        def proc(
            hook: int, event: int, hwnd: int, id_object: int, id_child: int, thread: int, ms: int
        ) -> None:
            if id_object == 0 and hwnd:  # OBJID_WINDOW: the window itself, not a part of it
                on_foreground(int(hwnd))

        self._event_proc = api.WINEVENTPROC(proc)
        flags = api.WINEVENT_OUTOFCONTEXT | api.WINEVENT_SKIPOWNPROCESS
        hook = api.SetWinEventHook(
            api.EVENT_SYSTEM_FOREGROUND,
            api.EVENT_SYSTEM_FOREGROUND,
            None,
            self._event_proc,
            0,
            0,
            flags,
        )
        return int(hook or 0)

    def unhook(self, hook: int) -> None:
        api.UnhookWinEvent(hook)

    def async_key_down(self, vk: int) -> bool:
        return bool(api.GetAsyncKeyState(vk) & 0x8000)  # most significant bit: down now

    def current_thread_id(self) -> int:
        return int(api.GetCurrentThreadId())

    def run_message_loop(self) -> None:
        msg = wintypes.MSG()
        while True:
            got = api.GetMessageW(ctypes.byref(msg), None, 0, 0)
            if got == 0:  # WM_QUIT
                return
            if got == -1:
                log.error("GetMessageW failed (error %d)", _last_error())
                return
            api.DispatchMessageW(ctypes.byref(msg))

    def post_message(self, hwnd: int, msg: int) -> None:
        api.PostMessageW(hwnd, msg, 0, 0)

    def post_quit(self, thread_id: int) -> None:
        api.PostThreadMessageW(thread_id, WM_QUIT, 0, 0)


class Win32WindowApi:
    """Window facts and activation for the foreground tracker."""

    def foreground_window(self) -> int:
        return int(api.GetForegroundWindow() or 0)

    def root_window(self, hwnd: int) -> int:
        return int(api.GetAncestor(hwnd, api.GA_ROOT) or hwnd)

    def class_name(self, hwnd: int) -> str:
        buf = ctypes.create_unicode_buffer(256)
        api.GetClassNameW(hwnd, buf, 256)
        return str(buf.value)

    def window_pid(self, hwnd: int) -> int:
        pid = wintypes.DWORD(0)
        api.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
        return int(pid.value)

    def is_window(self, hwnd: int) -> bool:
        return bool(api.IsWindow(hwnd))

    def set_foreground(self, hwnd: int) -> bool:
        return bool(api.SetForegroundWindow(hwnd))


class Win32MutexApi:
    """CreateMutexW for the single-instance check."""

    def create_mutex(self, name: str) -> tuple[int, bool]:
        handle = api.CreateMutexW(None, False, name)
        error = _last_error()
        # ERROR_ACCESS_DENIED: it exists, created by a process we may not open (elevated)
        exists = error in (api.ERROR_ALREADY_EXISTS, api.ERROR_ACCESS_DENIED)
        return int(handle or 0), exists
