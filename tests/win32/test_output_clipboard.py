"""The Windows clipboard and paste path, through the seam (pure: fake Win32, fake clock).

Each test scripts one of issue 12's situations on :class:`FakeWin32Output` and asserts the
exact Win32 calls and what the user's clipboard holds afterwards.
"""

from __future__ import annotations

import struct

import pytest

from desktop.output.base import (
    ClipboardUnavailable,
    OutputError,
    OutputTarget,
    TextLeftOnClipboard,
)
from desktop.output.clipboard import ClipboardPasteOutput, ClipboardSnapshot
from desktop.win32.clipboard import (
    CAN_INCLUDE_IN_HISTORY,
    CAN_UPLOAD_TO_CLOUD,
    CF_BITMAP,
    CF_DIB,
    CF_ENHMETAFILE,
    CF_UNICODETEXT,
    EXCLUDE_FROM_MONITORS,
    ClipboardBusy,
    Win32Clipboard,
    utf16z,
)
from desktop.win32.keyboard import KEYEVENTF_KEYUP, VK_CONTROL, SendInputKeySender
from tests.win32.fake_output import OTHER_WINDOW, OUR_WINDOW, FakeWin32Output

TARGET_PID = 4242
HISTORY_PID = 777
PNG = 0xC0A0  # a registered format id ("PNG")
IMAGE = b"BM" + bytes(range(256)) * 64
USER = {
    CF_UNICODETEXT: "secret 密码".encode("utf-16-le") + b"\0\0",
    CF_DIB: IMAGE,
    PNG: b"\x89PNG\r\n\x1a\n" + b"x" * 100,
    CF_BITMAP: b"<gdi handle>",
    CF_ENHMETAFILE: b"<gdi handle>",
}
DWORD0 = struct.pack("<I", 0)


def clipboard(fake: FakeWin32Output, **kw: float) -> Win32Clipboard:
    return Win32Clipboard(fake, clock=fake.clock, sleep=fake.sleep, **kw)  # type: ignore[arg-type]


def paste_output(fake: FakeWin32Output, **kw: float) -> ClipboardPasteOutput:
    keys = SendInputKeySender(fake, clock=fake.clock, sleep=fake.sleep, modifier_wait_s=0.5)
    return ClipboardPasteOutput(
        clipboard(fake, **kw), keys, paste_timeout_s=0.5, settle_s=0, clock=fake.clock
    )


def user_formats(fake: FakeWin32Output) -> dict[int, bytes | None]:
    return {f: d for f, d in fake.formats.items() if f not in fake.registered.values()}


def test_snapshot_keeps_every_memory_format_images_included() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    snap = clipboard(fake).snapshot()
    assert snap.complete
    assert snap.formats == (
        ("#13", USER[CF_UNICODETEXT]),
        ("#8", IMAGE),
        (f"#{PNG}", USER[PNG]),
    )  # CF_BITMAP (synthesized from CF_DIB) and the metafile handle are not copied
    assert ("GetClipboardData", CF_BITMAP) not in fake.calls
    assert fake.names()[-1] == "CloseClipboard" and fake.open_by is None


def test_snapshot_caps_say_incomplete() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    assert not clipboard(fake, max_format_bytes=1000).snapshot().complete
    fake.render_delay = {CF_DIB: 2.0}  # the owner renders its image slowly
    snap = clipboard(fake, snapshot_budget_s=1.0).snapshot()
    assert not snap.complete and [k for k, _ in snap.formats] == ["#13", "#8"]


def test_empty_clipboard_snapshot_does_not_open_it() -> None:
    fake = FakeWin32Output()
    assert clipboard(fake).snapshot() == ClipboardSnapshot()
    assert fake.names() == ["CountClipboardFormats"]


def test_paste_sequence_and_privacy_marks() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    fake.read_at(fake.now + 0.05, TARGET_PID)
    out = paste_output(fake)
    out.type_text("你好 world", "ctrl+v", OutputTarget(pid=TARGET_PID))
    # our text: delayed CF_UNICODETEXT, then the three marks, each a DWORD 0
    sets = [c for c in fake.calls if c[0] == "SetClipboardData"]
    marks = {
        fake.registered[n]
        for n in (EXCLUDE_FROM_MONITORS, CAN_INCLUDE_IN_HISTORY, CAN_UPLOAD_TO_CLOUD)
    }
    assert sets[:4] == [
        ("SetClipboardData", CF_UNICODETEXT, None),
        *[("SetClipboardData", f, DWORD0) for f in sorted(marks)],
    ]
    assert ("set_pending", CF_UNICODETEXT, utf16z("你好 world")) in fake.calls
    # the chord was sent after the set, as VK codes
    assert [(i.vk, i.flags) for i in fake.sent[0]] == [
        (VK_CONTROL, 0),
        (0x56, 0),
        (0x56, KEYEVENTF_KEYUP),
        (VK_CONTROL, KEYEVENTF_KEYUP),
    ]
    names = fake.names()
    assert names.index("SendInput") > names.index("SetClipboardData")
    assert out.last_read_observed is True
    # restored: every user format back, byte for byte, marked for history too
    assert user_formats(fake) == {f: USER[f] for f in (CF_UNICODETEXT, CF_DIB, PNG)}
    assert {f: fake.formats[f] for f in marks} == dict.fromkeys(marks, DWORD0)
    assert fake.owner == OUR_WINDOW and fake.open_by is None


def test_locked_clipboard_is_retried() -> None:
    fake = FakeWin32Output()
    fake.lock_opens = 3
    cb = clipboard(fake, open_attempts=5, open_retry_s=0.02)
    cb.set_text("x")
    opens = [c for c in fake.calls if c[0] in ("OpenClipboard", "sleep")]
    assert opens == [("OpenClipboard", OUR_WINDOW), ("sleep", 0.02)] * 3 + [
        ("OpenClipboard", OUR_WINDOW)
    ]
    assert cb.confirm_set()


def test_clipboard_locked_throughout_changes_nothing() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    fake.lock_opens = 100
    with pytest.raises(ClipboardBusy):
        paste_output(fake).type_text("hello", "ctrl+v", OutputTarget(pid=TARGET_PID))
    assert fake.sent == []  # no Ctrl+V: it would paste the user's old clipboard
    assert fake.formats == USER and fake.owner == OTHER_WINDOW


def test_no_paste_when_another_program_took_the_clipboard_after_our_set() -> None:
    fake = FakeWin32Output()
    fake.steal_after_set = True
    with pytest.raises(OutputError, match="did not take the text"):
        paste_output(fake).type_text("hello", "ctrl+v", OutputTarget(pid=TARGET_PID))
    assert fake.sent == []
    assert fake.formats[CF_UNICODETEXT] == "someone else".encode("utf-16-le")  # kept


def test_a_history_reader_does_not_trigger_the_restore() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    start = fake.now
    fake.read_at(start + 0.01, HISTORY_PID)  # a clipboard manager renders our text first
    fake.read_at(start + 0.3, TARGET_PID)  # the target reads later (already rendered)
    out = paste_output(fake)
    out.type_text("hello", "ctrl+v", OutputTarget(pid=TARGET_PID, read_timeout_s=1.5))
    # the target's read could not be observed, so the restore waited the app's full timeout
    assert out.last_read_observed is False
    assert fake.now >= start + 1.5
    assert user_formats(fake)[CF_UNICODETEXT] == USER[CF_UNICODETEXT]


def test_the_target_read_ends_the_wait_early() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    start = fake.now
    fake.read_at(start + 0.2, TARGET_PID)
    out = paste_output(fake)
    out.type_text("hello", "ctrl+v", OutputTarget(pid=TARGET_PID, read_timeout_s=3.0))
    assert out.last_read_observed is True
    assert start + 0.2 <= fake.now < start + 0.5  # read + 0.1 s grace, not 3 s


def test_a_newer_copy_by_the_user_is_not_overwritten_by_the_restore() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    fake.copy_at(fake.now + 0.1, {CF_UNICODETEXT: b"n\0e\0w\0\0\0"})
    paste_output(fake).type_text("hello", "ctrl+v", OutputTarget(pid=TARGET_PID))
    assert fake.formats == {CF_UNICODETEXT: b"n\0e\0w\0\0\0"} and fake.owner == OTHER_WINDOW


def test_empty_user_clipboard_is_emptied_again() -> None:
    fake = FakeWin32Output()
    fake.read_at(fake.now + 0.05, TARGET_PID)
    paste_output(fake).type_text("hello", "ctrl+v", OutputTarget(pid=TARGET_PID))
    assert fake.formats == {}  # our dictation does not stay on the clipboard


def test_held_modifier_leaves_the_text_on_the_clipboard() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    fake.hold(VK_CONTROL, until=fake.now + 60)
    with pytest.raises(TextLeftOnClipboard, match="the text is on the clipboard"):
        paste_output(fake).type_text("hello", "ctrl+v", OutputTarget(pid=TARGET_PID))
    assert fake.sent == []
    assert fake.formats[CF_UNICODETEXT] is None and fake.pending[CF_UNICODETEXT] == utf16z(
        "hello"
    )  # still offered (rendered when the user pastes), not restored away


def test_snapshot_over_the_cap_leaves_everything_alone() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    out = ClipboardPasteOutput(
        clipboard(fake, max_bytes=1000), SendInputKeySender(fake), settle_s=0
    )
    with pytest.raises(ClipboardUnavailable):
        out.type_text("hello", "ctrl+v")
    assert fake.formats == USER and fake.sent == []
    assert "EmptyClipboard" not in fake.names()


def test_snapshot_skips_a_format_the_owner_does_not_render() -> None:
    fake = FakeWin32Output()
    fake.user_clipboard(USER)
    fake.unrendered = {PNG}
    snap = clipboard(fake).snapshot()
    assert [k for k, _ in snap.formats] == ["#13", "#8"] and snap.complete


def test_which_formats_are_copied() -> None:
    from desktop.win32.clipboard import CF_DIBV5, CF_GDIOBJFIRST, CF_PRIVATEFIRST, is_copyable

    assert is_copyable(CF_UNICODETEXT) and is_copyable(CF_DIB) and is_copyable(CF_DIBV5)
    assert is_copyable(PNG)  # registered formats
    assert is_copyable(CF_GDIOBJFIRST)  # GMEM_MOVEABLE memory despite the name
    assert not is_copyable(CF_PRIVATEFIRST)  # a handle of the owner's own kind
    assert not is_copyable(CF_BITMAP) and not is_copyable(CF_ENHMETAFILE)
