"""The Windows shell thread: Raw Input hotkeys, session lock, foreground tracking.

One dedicated thread owns a hidden message-only window and runs its message loop:

* **Raw Input** (``RegisterRawInputDevices``, keyboard, ``RIDEV_INPUTSINK``): every key
  transition arrives as ``WM_INPUT`` and is decoded by :mod:`desktop.win32.rawinput`.
  Unlike pynput's ``WH_KEYBOARD_LL`` hook nothing waits on us: Windows does not hold the
  user's keystroke until our callback returns, so a busy GIL delays our hotkey but never
  the keyboard, and there is no ``LowLevelHooksTimeout`` after which the hook is silently
  removed (docs/windows.md cites both).
* **Session lock** (``WTSRegisterSessionNotification``): ``WM_WTSSESSION_CHANGE`` with
  ``WTS_SESSION_LOCK`` cancels any hold (the release would never be seen); lock and
  ``WTS_SESSION_UNLOCK`` also go to ``on_session_lock`` (the dictation core stops
  hands-free dictation and types nothing while locked).
* **Suppression** (``RegisterHotKey``): Raw Input only observes. A non-modifier hold key
  (Insert, Menu, F9, Pause...) or a chord is also registered as a system hotkey on this
  window, so its key-down goes to us as ``WM_HOTKEY`` instead of to the focused
  application; Raw Input still reports its press and release. A lone modifier (Right Ctrl,
  the default) cannot be registered and needs no suppression.
* **Foreground tracking** (``SetWinEventHook(EVENT_SYSTEM_FOREGROUND,
  WINEVENT_OUTOFCONTEXT)``; out-of-context events are delivered through this thread's
  message loop) feeds :class:`desktop.win32.foreground.ForegroundTracker`.

:class:`ShellThread` holds the logic and talks to Win32 only through :class:`ShellApi`;
:mod:`desktop.win32.native` implements it with ctypes, tests use a recording fake.
It is a :class:`desktop.hotkey.listener.KeyBackend`.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from desktop.hotkey.keys import MODIFIER_KEYS, KeySpec
from desktop.hotkey.listener import KeySink
from desktop.win32.rawinput import AltGrFilter, KeyEvent, decode_raw_input, vk_of

log = logging.getLogger(__name__)

# Window messages and codes (winuser.h, wtsapi32.h)
WM_QUIT = 0x0012
WM_INPUT = 0x00FF
WM_HOTKEY = 0x0312
WM_WTSSESSION_CHANGE = 0x02B1
WM_APP = 0x8000
WTS_SESSION_LOCK = 0x7
WTS_SESSION_UNLOCK = 0x8
MOD_ALT = 0x0001
MOD_CONTROL = 0x0002
MOD_SHIFT = 0x0004
MOD_WIN = 0x0008
MOD_NOREPEAT = 0x4000

_MOD_FLAGS = {"ctrl": MOD_CONTROL, "alt": MOD_ALT, "shift": MOD_SHIFT, "cmd": MOD_WIN}

#: Hotkey ids this window registers (RegisterHotKey: 0x0000-0xBFFF for applications).
FIRST_HOTKEY_ID = 0x0100

MessageHandler = Callable[[int, int, int], bool]


class ShellApi(Protocol):
    """The Win32 calls the shell thread makes (ctypes in desktop.win32.native)."""

    pointer_size: int

    def create_message_window(self, on_message: MessageHandler) -> int:
        """A message-only window whose messages go to ``on_message(msg, wparam, lparam)``
        (True: handled; False: default processing)."""
        ...

    def destroy_window(self, hwnd: int) -> None: ...
    def register_raw_keyboard(self, hwnd: int) -> bool: ...
    def raw_input_data(self, lparam: int) -> bytes: ...
    def register_session_notification(self, hwnd: int) -> bool: ...
    def unregister_session_notification(self, hwnd: int) -> None: ...
    def register_hotkey(self, hwnd: int, hotkey_id: int, modifiers: int, vk: int) -> bool: ...
    def unregister_hotkey(self, hwnd: int, hotkey_id: int) -> None: ...
    def hook_foreground(self, on_foreground: Callable[[int], None]) -> int: ...
    def unhook(self, hook: int) -> None: ...
    def async_key_down(self, vk: int) -> bool: ...
    def current_thread_id(self) -> int: ...
    def run_message_loop(self) -> None:
        """Get and dispatch messages until WM_QUIT."""
        ...

    def post_message(self, hwnd: int, msg: int) -> None: ...
    def post_quit(self, thread_id: int) -> None: ...


def hotkey_registration(spec: KeySpec) -> tuple[int, int] | None:
    """``(modifiers, vk)`` for RegisterHotKey, or None for a key that cannot or need not
    be suppressed (a lone modifier such as Right Ctrl, or a key without a virtual key)."""
    if spec.is_modifier_only or spec.key in MODIFIER_KEYS:
        return None
    vk = vk_of(spec.key)
    if vk is None:
        return None
    mods = MOD_NOREPEAT
    for m in spec.modifiers:
        mods |= _MOD_FLAGS[m]
    return mods, vk


class ShellThread:
    """The thread with the hidden window (see the module docstring)."""

    def __init__(
        self,
        api: ShellApi,
        *,
        on_foreground: Callable[[int], None] | None = None,
        on_session_lock: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_session_lock(locked)``: called on the shell thread when the session is
        locked (True) or unlocked (False)."""
        self._api = api
        self._on_foreground = on_foreground
        self._on_session_lock = on_session_lock
        self._clock = clock
        self._sink: KeySink | None = None
        self._altgr = AltGrFilter()
        self._hwnd = 0
        self._thread_id = 0
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._hotkeys: dict[int, str] = {}  # registered id → key name
        self._hook = 0
        self._session_registered = False
        self.raw_inputs = 0

    # --- KeyBackend (any thread) ---

    def start(self, sink: KeySink, timeout: float = 5.0) -> None:
        self._sink = sink
        if self._thread is not None:
            return
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="win32-shell", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the Windows shell thread did not start within {timeout:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"cannot listen for keys: {self._error}") from self._error

    def stop(self, timeout: float = 2.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._thread_id:
            self._api.post_quit(self._thread_id)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the Windows shell thread did not stop within %.1f s", timeout)

    def is_down(self, name: str) -> bool | None:
        vk = vk_of(name)
        return None if vk is None else self._api.async_key_down(vk)

    def suppress(self, specs: Sequence[KeySpec]) -> None:
        chosen = list(specs)
        self.call_soon(lambda: self._register_hotkeys(chosen))

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the shell thread (hotkeys belong to the thread of their window)."""
        self._calls.put(fn)
        if self._hwnd:
            self._api.post_message(self._hwnd, WM_APP)

    # --- the shell thread ---

    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:
            self._error = exc
            self._close()  # whatever was set up before the failure
            self._ready.set()
            return
        self._ready.set()
        try:
            self._drain_calls()
            self._api.run_message_loop()
        finally:
            self._close()

    def _open(self) -> None:
        api = self._api
        self._thread_id = api.current_thread_id()
        self._hwnd = api.create_message_window(self.handle_message)
        if not api.register_raw_keyboard(self._hwnd):
            raise OSError("RegisterRawInputDevices failed")
        # Without these the hotkey still works: a missed lock is caught by key polling,
        # and the foreground falls back to GetForegroundWindow at typing time.
        self._session_registered = api.register_session_notification(self._hwnd)
        if not self._session_registered:
            log.warning("no session lock notifications: holds end by key polling only")
        if self._on_foreground is not None:
            self._hook = api.hook_foreground(self._on_foreground_event)
            if not self._hook:
                log.warning("cannot track the foreground window (SetWinEventHook failed)")

    def _close(self) -> None:
        api = self._api
        for hotkey_id in list(self._hotkeys):
            api.unregister_hotkey(self._hwnd, hotkey_id)
        self._hotkeys.clear()
        if self._hook:
            api.unhook(self._hook)
            self._hook = 0
        if self._session_registered:
            api.unregister_session_notification(self._hwnd)
            self._session_registered = False
        if self._hwnd:
            api.destroy_window(self._hwnd)
            self._hwnd = 0

    def _drain_calls(self) -> None:
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception:
                log.exception("a call on the Windows shell thread failed")

    def _register_hotkeys(self, specs: list[KeySpec]) -> None:
        for hotkey_id in list(self._hotkeys):
            self._api.unregister_hotkey(self._hwnd, hotkey_id)
        self._hotkeys.clear()
        next_id = FIRST_HOTKEY_ID
        for spec in specs:
            reg = hotkey_registration(spec)
            if reg is None:
                continue
            if self._api.register_hotkey(self._hwnd, next_id, *reg):
                self._hotkeys[next_id] = spec.key
                next_id += 1
            else:  # another program holds it: ours still works, unsuppressed
                log.warning("cannot reserve %s (another program has it): not suppressed", spec)

    def _on_foreground_event(self, hwnd: int) -> None:
        if self._on_foreground is not None:
            try:
                self._on_foreground(hwnd)
            except Exception:
                log.exception("foreground tracking failed")

    def handle_message(self, msg: int, wparam: int, lparam: int) -> bool:
        """The window procedure's work (on the shell thread). Never raises."""
        try:
            return self._handle(msg, wparam, lparam)
        except Exception:
            log.exception("the Windows shell thread could not handle message %#x", msg)
            return False

    def _handle(self, msg: int, wparam: int, lparam: int) -> bool:
        sink = self._sink
        if msg == WM_INPUT:
            self.raw_inputs += 1
            raw = decode_raw_input(self._api.raw_input_data(lparam), self._api.pointer_size)
            name = raw.name if raw is not None else None
            if raw is None or name is None or sink is None or raw.ours:
                return False  # WM_INPUT still needs DefWindowProc (it frees the data)
            event = KeyEvent(name, raw.down, self._clock(), synthetic=raw.device == 0)
            for e in self._altgr.feed(event):
                if e.down:
                    sink.key_down(e.name, injected=e.synthetic)
                else:
                    sink.key_up(e.name)
            return False
        if msg == WM_WTSSESSION_CHANGE:
            if wparam == WTS_SESSION_LOCK and sink is not None:
                sink.session_locked()
            locking = wparam in (WTS_SESSION_LOCK, WTS_SESSION_UNLOCK)
            if locking and self._on_session_lock is not None:
                self._on_session_lock(wparam == WTS_SESSION_LOCK)
            return True
        if msg == WM_HOTKEY:
            key = self._hotkeys.get(wparam)
            # Raw Input reports the press too (a second press is a repeat); a WM_HOTKEY
            # handled after the key is up again would start a hold nothing releases
            if key is not None and sink is not None and self.is_down(key):
                sink.key_down(key)
            return True
        if msg == WM_APP:
            self._drain_calls()
            return True
        return False


def windows_key_backend(
    on_foreground: Callable[[int], None] | None = None,
    on_session_lock: Callable[[bool], None] | None = None,
) -> ShellThread:
    """The shell thread over the real Win32 calls (Windows only)."""
    native = importlib.import_module("desktop.win32.native")  # by name: exists on Windows
    return ShellThread(
        native.Win32ShellApi(), on_foreground=on_foreground, on_session_lock=on_session_lock
    )
