"""The Windows typist end to end through the seam: elevation, fallbacks, notices.

Pure lane (fake Win32, fake clock), except the two ClipboardWorker tests at the end, which
start one real thread each (in-process; they wait on futures, never sleep and hope).
"""

from __future__ import annotations

import threading

import pytest

from desktop.output.base import ClipboardUnavailable, OutputMethod, TextOutput
from desktop.output.clipboard import ClipboardPasteOutput, ClipboardSnapshot
from desktop.output.focus import FocusInfo
from desktop.output.keystrokes import KeystrokeOutput
from desktop.output.policy import OutputPolicy
from desktop.output.typist import Typist
from desktop.win32.clipboard import CF_UNICODETEXT, Win32Clipboard, utf16z
from desktop.win32.elevation import (
    SECURITY_MANDATORY_HIGH_RID,
    SECURITY_MANDATORY_MEDIUM_RID,
    SECURITY_MANDATORY_SYSTEM_RID,
    Elevation,
    ElevationGate,
    target_elevation,
)
from desktop.win32.keyboard import VK_RCONTROL, SendInputKeySender
from desktop.win32.output import ClipboardWorker
from tests.win32.fake_output import OTHER_WINDOW, FakeWin32Output

EDITOR = FocusInfo(window_id=0x10, pid=500, app="notepad.exe", title="notes")
ADMIN = FocusInfo(window_id=0x20, pid=600, app="WindowsTerminal.exe", title="Administrator")


class Focus:
    def __init__(self, info: FocusInfo) -> None:
        self.info = info

    def current(self) -> FocusInfo:
        return self.info


def windows_typist(fake: FakeWin32Output, target: FocusInfo, **policy: object) -> Typist:
    fake.integrity.setdefault(EDITOR.pid or 0, SECURITY_MANDATORY_MEDIUM_RID)
    keys = SendInputKeySender(fake, clock=fake.clock, sleep=fake.sleep, modifier_wait_s=0.5)
    clipboard = Win32Clipboard(fake, clock=fake.clock, sleep=fake.sleep)
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: KeystrokeOutput(keys),
        OutputMethod.CLIPBOARD_PASTE: ClipboardPasteOutput(
            clipboard, keys, settle_s=0, clock=fake.clock
        ),
    }
    return Typist(
        OutputPolicy(**policy),  # type: ignore[arg-type]
        outputs,
        Focus(target),
        own_pid=1,
        clock=fake.clock,
        gate=ElevationGate(fake),
        fallback=clipboard,
    )


# --- elevation -------------------------------------------------------------------------


def test_integrity_levels() -> None:
    fake = FakeWin32Output()
    fake.integrity = {1: SECURITY_MANDATORY_MEDIUM_RID, 2: SECURITY_MANDATORY_HIGH_RID}
    medium = SECURITY_MANDATORY_MEDIUM_RID
    assert target_elevation(fake, 1, medium) is Elevation.NOT_ABOVE
    assert target_elevation(fake, 2, medium) is Elevation.ABOVE
    assert target_elevation(fake, 2, SECURITY_MANDATORY_HIGH_RID) is Elevation.NOT_ABOVE
    assert target_elevation(fake, 2, None) is Elevation.UNKNOWN
    fake.token_denied = {3}  # an elevated process's token, seen from a medium process
    assert target_elevation(fake, 3, medium) is Elevation.ABOVE
    fake.process_denied = {4}
    assert target_elevation(fake, 4, medium) is Elevation.ABOVE
    assert fake.open_handles == set()  # every handle opened was closed


def test_elevation_calls_are_exact() -> None:
    fake = FakeWin32Output()
    fake.integrity = {600: SECURITY_MANDATORY_SYSTEM_RID}
    gate = ElevationGate(fake)
    assert gate.refusal(ADMIN) == "WindowsTerminal.exe runs as administrator"
    assert fake.names() == [
        "GetCurrentProcess",
        "OpenProcessToken",
        "GetTokenInformation",
        "CloseHandle",  # our token
        "OpenProcess",
        "OpenProcessToken",
        "GetTokenInformation",
        "CloseHandle",  # their token
        "CloseHandle",  # their process
    ]
    fake.calls.clear()
    gate.refusal(ADMIN)
    assert "GetCurrentProcess" not in fake.names()  # our level is read once
    assert gate.refusal(FocusInfo(1, None, "x", "")) is None  # no pid: cannot tell


def test_elevated_target_gets_nothing_typed_and_the_text_on_the_clipboard() -> None:
    fake = FakeWin32Output()
    fake.integrity[600] = SECURITY_MANDATORY_HIGH_RID
    fake.user_clipboard({CF_UNICODETEXT: utf16z("old")})
    result = windows_typist(fake, ADMIN).type_final("dir\nrm x")
    assert fake.sent == []  # UIPI would have dropped it silently
    assert not result.ok and result.left_on_clipboard
    assert result.notice is not None
    assert result.notice.startswith(
        "WindowsTerminal.exe runs as administrator; the text is on the clipboard."
    )
    assert "1 line break typed as a space" in result.notice
    assert fake.pending[CF_UNICODETEXT] == utf16z("dir rm x")  # sanitized, offered to paste
    assert fake.formats[CF_UNICODETEXT] is None  # delayed: rendered when pasted


def test_not_elevated_target_is_typed() -> None:
    fake = FakeWin32Output()
    result = windows_typist(fake, EDITOR).type_final("hello")
    assert result.ok and result.method is OutputMethod.KEYSTROKES
    assert fake.typed_text() == "hello" and result.notice is None


# --- fallbacks -------------------------------------------------------------------------


def test_cjk_goes_by_paste_and_is_read_by_the_target() -> None:
    fake = FakeWin32Output()
    fake.read_at(fake.now + 0.05, EDITOR.pid)
    result = windows_typist(fake, EDITOR).type_final("今天天气很好")
    assert result.ok and result.method is OutputMethod.CLIPBOARD_PASTE
    assert fake.formats == {}  # the empty clipboard is empty again


def test_held_modifier_while_typing_keys_falls_back_to_the_clipboard() -> None:
    fake = FakeWin32Output()
    fake.hold(VK_RCONTROL, until=fake.now + 60)
    result = windows_typist(fake, EDITOR).type_final("hello")
    assert fake.sent == []
    assert result.left_on_clipboard and not result.ok
    assert result.notice == "Typing failed; the text is on the clipboard."
    assert fake.pending[CF_UNICODETEXT] == utf16z("hello")


def test_held_modifier_while_pasting_leaves_the_text_on_the_clipboard() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard({CF_UNICODETEXT: utf16z("old")})
    fake.hold(VK_RCONTROL, until=fake.now + 60)
    result = windows_typist(fake, EDITOR, method=OutputMethod.CLIPBOARD_PASTE).type_final("hi")
    assert result.left_on_clipboard and not result.ok and fake.sent == []
    assert result.notice == "Paste failed — the text is on the clipboard."
    assert fake.pending[CF_UNICODETEXT] == utf16z("hi")


def test_locked_clipboard_falls_back_to_sendinput() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard({CF_UNICODETEXT: utf16z("old")})
    fake.lock_opens = 1000
    result = windows_typist(fake, EDITOR, method=OutputMethod.CLIPBOARD_PASTE).type_final("日本語")
    assert result.ok and result.method is OutputMethod.KEYSTROKES  # nothing was changed ...
    assert fake.typed_text() == "日本語"  # ... so KEYEVENTF_UNICODE typed it exactly
    assert fake.formats == {CF_UNICODETEXT: utf16z("old")} and fake.owner == OTHER_WINDOW


def test_slow_reader_app_gets_a_longer_wait() -> None:
    fake = FakeWin32Output()
    slack = FocusInfo(window_id=0x30, pid=700, app="slack.exe", title="Slack")
    fake.integrity[700] = SECURITY_MANDATORY_MEDIUM_RID
    start = fake.now
    fake.read_at(start + 1.0, 700)  # Electron reads late
    result = windows_typist(fake, slack, method=OutputMethod.CLIPBOARD_PASTE).type_final("hi")
    assert result.ok
    render = fake.calls.index(("set_pending", CF_UNICODETEXT, utf16z("hi")))
    assert fake.now >= start + 1.0  # the restore waited for the read at 1.0 s
    assert "EmptyClipboard" in fake.names()[render + 1 :]


# --- the clipboard worker thread --------------------------------------------------------


class ThreadRecordingClipboard:
    def __init__(self) -> None:
        self.threads: list[str] = []
        self.block = threading.Event()

    def _note(self) -> None:
        self.threads.append(threading.current_thread().name)

    def snapshot(self) -> ClipboardSnapshot:
        self._note()
        if not self.block.is_set():
            self.block.wait(5)
        return ClipboardSnapshot()

    def set_text(self, text: str) -> None:
        self._note()

    def confirm_set(self) -> bool:
        self._note()
        return True

    def restore(self, snapshot: ClipboardSnapshot) -> None:
        self._note()

    def wait_for_paste(
        self, sent_at: float, timeout_s: float, reader_pid: int | None = None
    ) -> bool:
        self._note()
        return False


def test_worker_runs_every_call_on_its_own_thread() -> None:
    inner = ThreadRecordingClipboard()
    inner.block.set()
    idles: list[str] = []
    worker = ClipboardWorker(
        lambda: inner, idle=lambda cb, t: idles.append(threading.current_thread().name)
    )
    try:
        worker.snapshot()
        worker.set_text("x")
        assert worker.confirm_set()
        worker.restore(ClipboardSnapshot())
        assert worker.wait_for_paste(0.0, 0.1) is False
        assert inner.threads == ["tingxie-clipboard"] * 5
        assert threading.current_thread().name != "tingxie-clipboard"
    finally:
        worker.close()


def test_worker_time_cap_makes_a_stuck_snapshot_unavailable() -> None:
    inner = ThreadRecordingClipboard()  # snapshot blocks until released
    worker = ClipboardWorker(lambda: inner, call_timeout_s=0.2)
    try:
        with pytest.raises(ClipboardUnavailable):
            worker.snapshot()
        inner.block.set()  # the stuck call ends; the worker goes on serving
        worker.set_text("y")
        assert inner.threads == ["tingxie-clipboard"] * 2
    finally:
        worker.close()


def test_worker_waits_and_restores_after_returning_in_order() -> None:
    order: list[str] = []
    gate = threading.Event()

    class Slow(ThreadRecordingClipboard):
        def wait_for_paste(
            self, sent_at: float, timeout_s: float, reader_pid: int | None = None
        ) -> bool:
            gate.wait(5)  # the target has not read yet
            order.append(f"wait:{reader_pid}")
            return True

        def restore(self, snapshot: ClipboardSnapshot) -> None:
            order.append("restore")

        def snapshot(self) -> ClipboardSnapshot:
            order.append("snapshot")
            return ClipboardSnapshot()

    worker = ClipboardWorker(Slow, call_timeout_s=5.0)
    try:
        worker.wait_then_restore(0.0, 1.0, 42, ClipboardSnapshot())
        assert order == []  # returned while the wait is still pending
        gate.set()
        worker.snapshot()  # the next paste's snapshot queues behind the restore
        assert order == ["wait:42", "restore", "snapshot"]
    finally:
        worker.close()


def test_build_windows_typist_composition(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production composition, with the ctypes module replaced by the fake."""
    import types

    import desktop.win32.output as win_output

    fake = FakeWin32Output()
    native = types.ModuleType("fake_native_output")
    native.NativeKeyboardApi = lambda: fake  # type: ignore[attr-defined]
    native.NativeClipboardApi = lambda: fake  # type: ignore[attr-defined]
    native.NativeProcessApi = lambda: fake  # type: ignore[attr-defined]
    monkeypatch.setattr(win_output.importlib, "import_module", lambda name: native)
    win_output._shared_clipboard.cache_clear()
    try:
        focus = Focus(EDITOR)
        first = win_output.build_windows_typist(OutputPolicy(), focus=focus)
        second = win_output.build_windows_typist(OutputPolicy(), focus=focus)
        keys = first.outputs[OutputMethod.KEYSTROKES]
        paste = first.outputs[OutputMethod.CLIPBOARD_PASTE]
        assert isinstance(keys, KeystrokeOutput) and isinstance(keys.sender, SendInputKeySender)
        assert isinstance(paste, ClipboardPasteOutput)
        assert isinstance(paste.clipboard, ClipboardWorker) and paste.sender is keys.sender
        assert first.fallback is paste.clipboard  # the text is left where paste puts it
        assert isinstance(first.gate, ElevationGate) and first.focus is focus
        assert second.fallback is first.fallback  # one clipboard thread per process
        assert keys.sender.guard is first.guard
    finally:
        worker = win_output._shared_clipboard(native)
        worker.close()
        win_output._shared_clipboard.cache_clear()
