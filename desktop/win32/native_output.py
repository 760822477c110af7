"""ctypes implementations of the output seams (:class:`desktop.win32.keyboard.KeyboardApi`,
:class:`desktop.win32.clipboard.ClipboardApi`, :class:`desktop.win32.elevation.ProcessApi`).

Windows only; kept as thin as possible: every decision is made above, in code tested on
Linux against a recording fake. This module has not run on Windows (docs/windows.md).

The clipboard window: a message-only window created on the thread that builds
:class:`NativeClipboardApi` (the clipboard worker thread). Its window procedure answers
``WM_RENDERFORMAT`` with the pending text and notes the reader's process (the window that
has the clipboard open during the request, ``GetOpenClipboardWindow``), renders
everything on ``WM_RENDERALLFORMATS`` (the app is closing while we own the clipboard) and
forgets the pending data on ``WM_DESTROYCLIPBOARD``.
"""

from __future__ import annotations

import ctypes
import logging
import time
from ctypes import wintypes
from typing import Any

from desktop.win32 import api
from desktop.win32.clipboard import RenderRequest

log = logging.getLogger(__name__)


def _last_error() -> int:
    return int(ctypes.get_last_error())  # type: ignore[attr-defined,unused-ignore]


class NativeKeyboardApi:
    pointer_size = ctypes.sizeof(ctypes.c_void_p)

    def send_input(self, packed: bytes, count: int, size: int) -> int:
        buf = ctypes.create_string_buffer(packed, len(packed))
        return int(api.SendInput(count, buf, size))

    def async_key_state(self, vk: int) -> int:
        return int(api.GetAsyncKeyState(vk)) & 0xFFFF

    def scan_code(self, vk: int) -> int:
        return int(api.MapVirtualKeyW(vk, api.MAPVK_VK_TO_VSC))


def _global_bytes(handle: int) -> bytes | None:
    size = int(api.GlobalSize(handle))
    ptr = api.GlobalLock(handle)
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr, size)
    finally:
        api.GlobalUnlock(handle)


def _global_alloc(data: bytes) -> int:
    handle = api.GlobalAlloc(api.GMEM_MOVEABLE, max(1, len(data)))
    if not handle:
        raise ctypes.WinError(_last_error())  # type: ignore[attr-defined,unused-ignore]
    ptr = api.GlobalLock(handle)
    if not ptr:
        api.GlobalFree(handle)
        raise ctypes.WinError(_last_error())  # type: ignore[attr-defined,unused-ignore]
    try:
        ctypes.memmove(ptr, data, len(data))
    finally:
        api.GlobalUnlock(handle)
    return int(handle)


class NativeClipboardApi:
    """One per clipboard worker thread; create it on that thread."""

    _class_count = 0

    def __init__(self) -> None:
        self._pending: dict[int, bytes] = {}
        self._requests: list[RenderRequest] = []
        self._wndproc: Any = api.WNDPROC(self._on_message)  # must outlive the window
        NativeClipboardApi._class_count += 1
        name = f"tingxie-clipboard-{NativeClipboardApi._class_count}"
        wc = api.WNDCLASSW()
        wc.lpfnWndProc = self._wndproc
        wc.hInstance = api.GetModuleHandleW(None)
        wc.lpszClassName = name
        if not api.RegisterClassW(ctypes.byref(wc)):
            raise ctypes.WinError(_last_error())  # type: ignore[attr-defined,unused-ignore]
        hwnd = api.CreateWindowExW(
            0, name, "tingxie clipboard", 0, 0, 0, 0, 0, api.HWND_MESSAGE, None, wc.hInstance, None
        )
        if not hwnd:
            raise ctypes.WinError(_last_error())  # type: ignore[attr-defined,unused-ignore]
        self._hwnd = int(hwnd)

    # the window procedure (runs on this thread, inside pump())
    def _on_message(self, hwnd: int, msg: int, wparam: int, lparam: int) -> int:
        if msg == api.WM_RENDERFORMAT:
            self._render(int(wparam))
            return 0
        if msg == api.WM_RENDERALLFORMATS:
            if api.OpenClipboard(hwnd):
                try:
                    if int(api.GetClipboardOwner() or 0) == self._hwnd:
                        for fmt in list(self._pending):
                            self._render(fmt)
                finally:
                    api.CloseClipboard()
            return 0
        if msg == api.WM_DESTROYCLIPBOARD:
            self._pending.clear()
            return 0
        return int(api.DefWindowProcW(hwnd, msg, wparam, lparam))

    def _render(self, fmt: int) -> None:
        data = self._pending.get(fmt)
        if data is None:
            return
        reader = int(api.GetOpenClipboardWindow() or 0)
        pid: int | None = None
        if reader and reader != self._hwnd:
            value = wintypes.DWORD(0)
            api.GetWindowThreadProcessId(reader, ctypes.byref(value))
            pid = int(value.value) or None
        try:
            handle = _global_alloc(data)
        except OSError:
            log.exception("rendering clipboard format %d failed", fmt)
            return
        if not api.SetClipboardData(fmt, handle):
            api.GlobalFree(handle)  # the system did not take it
            log.error("SetClipboardData while rendering failed (error %d)", _last_error())
            return
        self._requests.append(RenderRequest(time.monotonic(), fmt, pid))

    # ClipboardApi
    def clipboard_window(self) -> int:
        return self._hwnd

    def open_clipboard(self, hwnd: int) -> bool:
        return bool(api.OpenClipboard(hwnd))

    def close_clipboard(self) -> None:
        api.CloseClipboard()

    def empty_clipboard(self) -> bool:
        return bool(api.EmptyClipboard())

    def count_formats(self) -> int:
        return int(api.CountClipboardFormats())

    def enum_formats(self) -> list[int]:
        formats: list[int] = []
        fmt = 0
        while True:
            fmt = int(api.EnumClipboardFormats(fmt))
            if not fmt:
                return formats
            formats.append(fmt)

    def get_data(self, fmt: int) -> bytes | None:
        handle = api.GetClipboardData(fmt)
        return _global_bytes(int(handle)) if handle else None

    def set_data(self, fmt: int, data: bytes | None) -> bool:
        if data is None:  # delayed rendering: a NULL handle, no error
            ctypes.set_last_error(0)  # type: ignore[attr-defined,unused-ignore]
            return bool(api.SetClipboardData(fmt, None)) or _last_error() == 0
        handle = _global_alloc(data)
        if not api.SetClipboardData(fmt, handle):
            api.GlobalFree(handle)
            return False
        return True  # the system owns the memory now

    def set_pending(self, fmt: int, data: bytes) -> None:
        self._pending[fmt] = data

    def register_format(self, name: str) -> int:
        return int(api.RegisterClipboardFormatW(name))

    def sequence_number(self) -> int:
        return int(api.GetClipboardSequenceNumber())

    def clipboard_owner(self) -> int:
        return int(api.GetClipboardOwner() or 0)

    def pump(self, timeout_s: float) -> None:
        api.MsgWaitForMultipleObjects(
            0, None, False, max(0, int(timeout_s * 1000)), api.QS_ALLINPUT
        )
        msg = wintypes.MSG()
        while api.PeekMessageW(ctypes.byref(msg), self._hwnd, 0, 0, api.PM_REMOVE):
            api.DispatchMessageW(ctypes.byref(msg))

    def render_requests(self) -> list[RenderRequest]:
        out, self._requests = self._requests, []
        return out


class NativeProcessApi:
    def open_process(self, pid: int) -> int:
        return int(api.OpenProcess(api.PROCESS_QUERY_LIMITED_INFORMATION, False, pid) or 0)

    def current_process(self) -> int:
        return int(api.GetCurrentProcess() or 0)

    def open_process_token(self, process: int) -> int:
        token = wintypes.HANDLE()
        if not api.OpenProcessToken(process, api.TOKEN_QUERY, ctypes.byref(token)):
            return 0
        return int(token.value or 0)

    def token_integrity(self, token: int) -> int | None:
        needed = wintypes.DWORD(0)
        api.GetTokenInformation(token, api.TOKEN_INTEGRITY_LEVEL, None, 0, ctypes.byref(needed))
        if not needed.value:
            return None
        buf = ctypes.create_string_buffer(needed.value)
        if not api.GetTokenInformation(
            token, api.TOKEN_INTEGRITY_LEVEL, buf, needed, ctypes.byref(needed)
        ):
            return None
        label = api.TOKEN_MANDATORY_LABEL.from_buffer(buf)
        sid = label.Label.Sid
        count = int(api.GetSidSubAuthorityCount(sid).contents.value)
        if count < 1:
            return None
        return int(api.GetSidSubAuthority(sid, count - 1).contents.value)

    def close_handle(self, handle: int) -> None:
        api.CloseHandle(handle)

    def last_error(self) -> int:
        return _last_error()
