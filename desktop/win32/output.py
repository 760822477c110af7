"""The Windows typist: SendInput keystrokes, Win32 clipboard paste, the elevation gate.

:func:`build_windows_typist` composes the pieces (the ctypes seam from
:mod:`desktop.win32.native_output`); :class:`ClipboardWorker` runs every clipboard call on
one dedicated thread, which owns the clipboard window (it must pump messages to render our
delayed text) and keeps clipboard I/O off the UI thread, where a slow owner rendering its
data (or a hung one) would freeze the app. Each call has a time cap; a snapshot that runs
over it counts as "clipboard unavailable" (nothing was changed yet), so the typist types
with SendInput instead. The wait for the target's read and the restore run there too,
after the paste chord, without holding up the caller (up to 3 s for a remote desktop).
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib
import logging
import queue
import threading
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from desktop.output.base import (
    ClipboardUnavailable,
    InjectionGuard,
    OutputError,
)
from desktop.output.clipboard import Clipboard, ClipboardSnapshot
from desktop.output.focus import FocusProbe
from desktop.output.policy import OutputPolicy
from desktop.output.typist import Typist, standard_outputs

log = logging.getLogger(__name__)

T = TypeVar("T")


class ClipboardWorker:
    """A :class:`Clipboard` whose calls all run on one worker thread.

    ``make`` builds the real clipboard on that thread (its window belongs to the thread);
    between calls the thread keeps dispatching the window's messages (``idle``), so a
    program pasting text we left on the clipboard gets it rendered at any time.
    ``call_timeout_s`` caps each call; ``wait_for_paste`` gets its own timeout on top.
    """

    def __init__(
        self,
        make: Callable[[], Clipboard],
        idle: Callable[[Clipboard, float], None] | None = None,
        call_timeout_s: float = 3.0,
        idle_s: float = 0.02,
    ) -> None:
        self.call_timeout_s = call_timeout_s
        self._idle = idle
        self._idle_s = idle_s
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._loop, args=(make,), name="tingxie-clipboard", daemon=True
        )
        self._made: concurrent.futures.Future[Clipboard] = concurrent.futures.Future()
        self._thread.start()
        try:
            self._clipboard = self._made.result(timeout=call_timeout_s)
        except concurrent.futures.TimeoutError:
            raise OutputError("the clipboard thread did not start in time") from None

    def _loop(self, make: Callable[[], Clipboard]) -> None:
        try:
            clipboard = make()
        except BaseException as e:
            self._made.set_exception(e)
            return
        self._made.set_result(clipboard)
        while True:
            try:
                job = self._jobs.get(timeout=self._idle_s if self._idle else None)
            except queue.Empty:
                try:
                    if self._idle is not None:
                        self._idle(clipboard, 0.0)
                except Exception:
                    log.exception("clipboard window message dispatch failed")
                continue
            if job is None:
                return
            job()

    def _run(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except BaseException as e:
                future.set_exception(e)

        self._jobs.put(job)
        try:
            return future.result(timeout=self.call_timeout_s if timeout is None else timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise OutputError("the clipboard did not answer in time") from None

    def snapshot(self) -> ClipboardSnapshot:
        try:
            return self._run(self._clipboard.snapshot)
        except ClipboardUnavailable:
            raise
        except OutputError as e:
            raise ClipboardUnavailable(str(e)) from e

    def set_text(self, text: str) -> None:
        self._run(lambda: self._clipboard.set_text(text))

    def confirm_set(self) -> bool:
        return self._run(self._clipboard.confirm_set)

    def restore(self, snapshot: ClipboardSnapshot) -> None:
        self._run(lambda: self._clipboard.restore(snapshot))

    def wait_for_paste(
        self, sent_at: float, timeout_s: float, reader_pid: int | None = None
    ) -> bool:
        return self._run(
            lambda: self._clipboard.wait_for_paste(sent_at, timeout_s, reader_pid),
            timeout=timeout_s + self.call_timeout_s,
        )

    def wait_then_restore(
        self,
        sent_at: float,
        timeout_s: float,
        reader_pid: int | None,
        snapshot: ClipboardSnapshot,
    ) -> None:
        """Queue the wait for the target's read and the restore; return at once. Later
        calls queue behind them, so the next paste snapshots the restored clipboard."""

        def job() -> None:
            try:
                read = self._clipboard.wait_for_paste(sent_at, timeout_s, reader_pid)
                log.debug("paste read by the target: %s", read)
            except Exception:
                log.exception("waiting for the paste failed")
            try:
                self._clipboard.restore(snapshot)
            except Exception:
                log.exception("restoring the clipboard failed")

        self._jobs.put(job)

    def close(self) -> None:
        self._jobs.put(None)


def _pump_win32(clipboard: Clipboard, timeout_s: float) -> None:
    from desktop.win32.clipboard import Win32Clipboard

    if isinstance(clipboard, Win32Clipboard):
        clipboard.api.pump(timeout_s)


@functools.cache
def _shared_clipboard(native: Any) -> ClipboardWorker:
    """One clipboard thread and window per process: a typist rebuilt for new settings
    reuses it (and queues behind its pending restore) instead of starting another."""
    from desktop.win32.clipboard import Win32Clipboard

    return ClipboardWorker(lambda: Win32Clipboard(native.NativeClipboardApi()), _pump_win32)


def build_windows_typist(
    policy: OutputPolicy,
    *,
    guard: InjectionGuard | None = None,
    own_window_ids: Collection[int] = (),
    focus: FocusProbe | None = None,
    paste_timeout_s: float = 0.5,
) -> Typist:
    """The production typist on Windows (call on Windows only)."""
    from desktop.output.focus import WindowsFocusProbe
    from desktop.win32.elevation import ElevationGate
    from desktop.win32.keyboard import SendInputKeySender, held_modifiers

    # by name: the ctypes layer exists only on Windows (and is not type-checked here)
    native = importlib.import_module("desktop.win32.native_output")
    guard = guard or InjectionGuard()
    keyboard = native.NativeKeyboardApi()
    sender = SendInputKeySender(keyboard, guard)
    clipboard = _shared_clipboard(native)
    outputs = standard_outputs(sender, clipboard, policy, paste_timeout_s)
    return Typist(
        policy,
        outputs,
        focus if focus is not None else WindowsFocusProbe(),
        own_window_ids=own_window_ids,
        guard=guard,
        gate=ElevationGate(native.NativeProcessApi()),
        fallback=clipboard,
        # read by the dictation core before each job (GetAsyncKeyState, no wait)
        modifier_probe=lambda: tuple(f"0x{vk:02X}" for vk in held_modifiers(keyboard)),
    )
