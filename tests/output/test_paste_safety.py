"""Paste never inserts the wrong clipboard, on every platform (pure: fakes, no sleeps).

Issue 12 item 2: when setting the clipboard fails, Ctrl+V would paste the user's previous
content (possibly a password); an empty snapshot restored after a failed set would wipe
the user's clipboard. The Windows specifics are in tests/win32/test_output_clipboard.py.
"""

from __future__ import annotations

import pytest

from desktop.hotkey.keys import KeySpec
from desktop.output.base import (
    ClipboardUnavailable,
    OutputError,
    OutputMethod,
    OutputTarget,
    TextLeftOnClipboard,
    TextOutput,
)
from desktop.output.clipboard import ClipboardPasteOutput, ClipboardSnapshot
from desktop.output.policy import OutputPolicy
from desktop.output.typist import Typist
from tests.output.test_typist_units import (
    EDITOR,
    FakeClipboard,
    FakeFocus,
    FakeSender,
    RecordingOutput,
)


class FailingSender(FakeSender):
    def tap_chord(self, chord: KeySpec) -> None:
        raise OutputError("a modifier key is held")


def paste(cb: FakeClipboard, sender: FakeSender | None = None) -> ClipboardPasteOutput:
    return ClipboardPasteOutput(cb, sender or FakeSender(cb.events), settle_s=0)


def test_no_chord_when_the_clipboard_did_not_take_the_text() -> None:
    cb = FakeClipboard(confirm=False)
    with pytest.raises(OutputError, match="did not take the text"):
        paste(cb).type_text("hello")
    assert cb.events == ["snapshot", "set:hello", "confirm:False"]  # no chord, no restore


def test_failed_set_never_restores_an_empty_snapshot() -> None:
    cb = FakeClipboard(content=ClipboardSnapshot(), fail_set=True)
    with pytest.raises(OutputError):
        paste(cb).type_text("hello")
    assert cb.events == ["snapshot"]  # nothing cleared: the user's content may still be there


def test_incomplete_snapshot_changes_nothing() -> None:
    cb = FakeClipboard(content=ClipboardSnapshot((("text/plain", b"x"),), complete=False))
    with pytest.raises(ClipboardUnavailable):
        paste(cb).type_text("hello")
    assert cb.events == ["snapshot"]


def test_failed_chord_leaves_the_text_on_the_clipboard() -> None:
    cb = FakeClipboard()
    with pytest.raises(TextLeftOnClipboard, match="the text is on the clipboard"):
        paste(cb, FailingSender(cb.events)).type_text("hello")
    assert cb.events == ["snapshot", "set:hello", "confirm:True"]  # not restored away
    assert cb.content.text == "hello"


def test_target_pid_and_read_timeout_reach_the_clipboard() -> None:
    seen: list[tuple[float, int | None]] = []

    class Recording(FakeClipboard):
        def wait_for_paste(
            self, sent_at: float, timeout_s: float, reader_pid: int | None = None
        ) -> bool:
            seen.append((timeout_s, reader_pid))
            return True

    cb = Recording()
    paste(cb).type_text("hi", "ctrl+v", OutputTarget(pid=77, read_timeout_s=3.0))
    paste(cb).type_text("hi", "ctrl+v", OutputTarget(pid=78))
    assert seen == [(3.0, 77), (0.5, 78)]


def test_typist_falls_back_to_keystrokes_when_the_clipboard_is_unavailable() -> None:
    log: list[tuple[str, str, str | None]] = []
    cb = FakeClipboard(content=ClipboardSnapshot(complete=False))
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.CLIPBOARD_PASTE: paste(cb),
        OutputMethod.KEYSTROKES: RecordingOutput("keys", log),
    }
    r = Typist(OutputPolicy(), outputs, FakeFocus(EDITOR)).type_final("今天")
    assert r.ok and r.method is OutputMethod.KEYSTROKES and log == [("keys", "今天", "ctrl+v")]


def test_typist_reports_paste_failed_with_the_text_on_the_clipboard() -> None:
    cb = FakeClipboard()
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.CLIPBOARD_PASTE: paste(cb, FailingSender(cb.events)),
    }
    r = Typist(OutputPolicy(), outputs, FakeFocus(EDITOR)).type_final("今天")
    assert not r.ok and r.left_on_clipboard
    assert r.notice == "Paste failed — the text is on the clipboard."


def test_typist_fallback_clipboard_after_failed_keystrokes() -> None:
    log: list[tuple[str, str, str | None]] = []
    cb = FakeClipboard()
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: RecordingOutput("keys", log, fail=True)
    }
    typist = Typist(OutputPolicy(), outputs, FakeFocus(EDITOR), fallback=cb)
    r = typist.type_final("hello\x1b[201~")
    assert not r.ok and r.left_on_clipboard and cb.content.text == "hello[201~"
    assert r.notice is not None
    assert r.notice.startswith("Typing failed; the text is on the clipboard.")
    # without a fallback: the failure, no claim about the clipboard
    r = Typist(OutputPolicy(), outputs, FakeFocus(EDITOR)).type_final("hello")
    assert r.error == "OutputError: boom" and not r.left_on_clipboard


def test_gate_refusal_without_a_fallback_says_not_typed() -> None:
    log: list[tuple[str, str, str | None]] = []

    class Refuse:
        def refusal(self, target: object) -> str | None:
            return "app runs as administrator"

    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: RecordingOutput("keys", log)
    }
    r = Typist(OutputPolicy(), outputs, FakeFocus(EDITOR), gate=Refuse()).type_final("x")
    assert log == [] and not r.ok
    assert r.notice == "app runs as administrator; the text was not typed."


def test_a_deferred_restore_clipboard_waits_and_restores_on_its_own() -> None:
    calls: list[tuple[object, ...]] = []

    class Deferred(FakeClipboard):
        def wait_then_restore(
            self,
            sent_at: float,
            timeout_s: float,
            reader_pid: int | None,
            snapshot: ClipboardSnapshot,
        ) -> None:
            calls.append(("wait_then_restore", timeout_s, reader_pid, snapshot))

    cb = Deferred()
    saved = cb.content
    out = paste(cb)
    out.type_text("hi", "ctrl+v", OutputTarget(pid=9, read_timeout_s=1.5))
    assert calls == [("wait_then_restore", 1.5, 9, saved)]
    assert "restore" not in cb.events and not any(e.startswith("wait") for e in cb.events)
    assert out.last_read_observed is None
