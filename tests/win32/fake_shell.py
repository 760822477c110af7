"""A recording stand-in for the Windows shell seams (ShellApi, WindowApi, MutexApi).

Every call is appended to ``calls`` as a tuple, so tests assert exactly what would have
been asked of Win32. Raw Input records are real ``RAWINPUT`` bytes
(:func:`desktop.win32.rawinput.encode_raw_input`), handed out by ``raw_input_data`` for the
``lParam`` a scripted ``WM_INPUT`` carries. The message loop delivers the scripted
messages in order, then those :meth:`FakeShellApi.deliver` posts, until ``post_quit``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from desktop.win32.rawinput import RawKey, encode_raw_input
from desktop.win32.shell import WM_INPUT, MessageHandler


def raw_key(
    vk: int,
    down: bool,
    *,
    make_code: int = 0,
    e0: bool = False,
    device: int = 0x1234,
    extra: int = 0,
) -> RawKey:
    return RawKey(vk, make_code, down, e0, False, device, extra)


class FakeShellApi:
    """ShellApi for tests. ``script`` is the list of (msg, wparam, lparam) the loop delivers;
    :meth:`wm_input` adds a WM_INPUT carrying a raw key."""

    pointer_size = 8

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.script: list[tuple[int, int, int]] = []
        self.raw: dict[int, bytes] = {}
        self.keys_down: set[int] = set()
        self.refuse_hotkeys: set[int] = set()  # VKs another program has registered
        self.raw_input_ok = True
        self.session_ok = True
        self.hook_handle = 0x77
        self.handler: MessageHandler | None = None
        self.on_foreground: Callable[[int], None] | None = None
        self.quit = threading.Event()
        self.queue: queue.Queue[tuple[int, int, int] | None] = queue.Queue()
        self.loop_done = threading.Event()

    def wm_input(self, key: RawKey) -> None:
        lparam = 0x1000 + len(self.raw)
        self.raw[lparam] = encode_raw_input(key, self.pointer_size)
        self.script.append((WM_INPUT, 0, lparam))

    # --- ShellApi ---

    def create_message_window(self, on_message: MessageHandler) -> int:
        self.calls.append(("create_message_window",))
        self.handler = on_message
        return 0xABC

    def destroy_window(self, hwnd: int) -> None:
        self.calls.append(("destroy_window", hwnd))

    def register_raw_keyboard(self, hwnd: int) -> bool:
        self.calls.append(("register_raw_keyboard", hwnd))
        return self.raw_input_ok

    def raw_input_data(self, lparam: int) -> bytes:
        return self.raw.get(lparam, b"")

    def register_session_notification(self, hwnd: int) -> bool:
        self.calls.append(("register_session_notification", hwnd))
        return self.session_ok

    def unregister_session_notification(self, hwnd: int) -> None:
        self.calls.append(("unregister_session_notification", hwnd))

    def register_hotkey(self, hwnd: int, hotkey_id: int, modifiers: int, vk: int) -> bool:
        self.calls.append(("register_hotkey", hwnd, hotkey_id, modifiers, vk))
        return vk not in self.refuse_hotkeys

    def unregister_hotkey(self, hwnd: int, hotkey_id: int) -> None:
        self.calls.append(("unregister_hotkey", hwnd, hotkey_id))

    def hook_foreground(self, on_foreground: Callable[[int], None]) -> int:
        self.calls.append(("hook_foreground",))
        self.on_foreground = on_foreground
        return self.hook_handle

    def unhook(self, hook: int) -> None:
        self.calls.append(("unhook", hook))

    def async_key_down(self, vk: int) -> bool:
        return vk in self.keys_down

    def current_thread_id(self) -> int:
        return 4242

    def run_message_loop(self) -> None:
        assert self.handler is not None
        for msg, wparam, lparam in self.script:
            self.handler(msg, wparam, lparam)
        while True:  # like GetMessageW: later messages in order, until WM_QUIT
            item = self.queue.get(timeout=5)
            if item is None:
                break
            self.handler(*item)
        self.loop_done.set()

    def deliver(self, msg: int, wparam: int = 0, lparam: int = 0) -> None:
        """Post a message to the running loop (from the test's thread)."""
        self.queue.put((msg, wparam, lparam))

    def deliver_key(self, key: RawKey) -> None:
        lparam = 0x1000 + len(self.raw)
        self.raw[lparam] = encode_raw_input(key, self.pointer_size)
        self.deliver(WM_INPUT, 0, lparam)

    def post_message(self, hwnd: int, msg: int) -> None:
        self.calls.append(("post_message", hwnd, msg))

    def post_quit(self, thread_id: int) -> None:
        self.calls.append(("post_quit", thread_id))
        self.quit.set()
        self.queue.put(None)


@dataclass
class FakeWindow:
    cls: str
    pid: int
    root: int = 0  # 0: the window is its own root
    title: str = ""
    image: str = ""


@dataclass
class FakeWindowApi:
    """WindowApi (and desktop.output.focus.Win32Api) over a table of windows."""

    windows: dict[int, FakeWindow] = field(default_factory=dict)
    front: int = 0
    allow_set_foreground: bool = True
    calls: list[tuple[object, ...]] = field(default_factory=list)

    def foreground_window(self) -> int:
        return self.front

    def root_window(self, hwnd: int) -> int:
        w = self.windows.get(hwnd)
        return w.root or hwnd if w is not None else hwnd

    def class_name(self, hwnd: int) -> str:
        w = self.windows.get(hwnd)
        return w.cls if w is not None else ""

    def window_pid(self, hwnd: int) -> int:
        w = self.windows.get(hwnd)
        return w.pid if w is not None else 0

    def is_window(self, hwnd: int) -> bool:
        return hwnd in self.windows

    def set_foreground(self, hwnd: int) -> bool:
        self.calls.append(("set_foreground", hwnd))
        if self.allow_set_foreground:
            self.front = hwnd
        return self.allow_set_foreground

    def window_title(self, hwnd: int) -> str:
        w = self.windows.get(hwnd)
        return w.title if w is not None else ""

    def process_image(self, pid: int) -> str:
        return next((w.image for w in self.windows.values() if w.pid == pid), "")


@dataclass
class FakeMutexApi:
    """CreateMutexW: the first create of a name owns it, later ones see ERROR_ALREADY_EXISTS."""

    existing: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    fail: bool = False

    def create_mutex(self, name: str) -> tuple[int, bool]:
        self.calls.append(name)
        if self.fail:
            return 0, False
        exists = name in self.existing
        self.existing.add(name)
        return 0x500 + len(self.calls), exists
