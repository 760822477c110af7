"""Typist, clipboard-paste sequencing, focus helpers and the Windows probe, with fakes.

The fakes are recording stand-ins for the OS; the real X11 behaviour is tested in
test_x11_typing.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from desktop.hotkey.keys import KeySpec
from desktop.output.base import (
    InjectionGuard,
    OutputError,
    OutputMethod,
    OutputTarget,
    TextOutput,
)
from desktop.output.clipboard import ClipboardPasteOutput, ClipboardSnapshot
from desktop.output.focus import FocusInfo, WindowsFocusProbe, is_own_window
from desktop.output.keystrokes import KeystrokeOutput
from desktop.output.policy import OutputPolicy
from desktop.output.typist import Typist

K, C = OutputMethod.KEYSTROKES, OutputMethod.CLIPBOARD_PASTE
EDITOR = FocusInfo(window_id=11, pid=500, app="Gedit", title="notes", instance="gedit")
TERMINAL = FocusInfo(
    window_id=12, pid=501, app="Gnome-terminal", title="bash", instance="gnome-terminal-server"
)


@dataclass
class RecordingOutput:
    name: str
    log: list[tuple[str, str, str | None]]
    fail: bool = False

    def type_text(
        self, text: str, paste_chord: str | None = None, target: OutputTarget | None = None
    ) -> None:
        if self.fail:
            raise OutputError("boom")
        self.log.append((self.name, text, paste_chord))


@dataclass
class FakeFocus:
    info: FocusInfo | None

    def current(self) -> FocusInfo | None:
        return self.info


@dataclass
class Clock:
    t: float = 100.0

    def __call__(self) -> float:
        return self.t


def make(
    info: FocusInfo | None = EDITOR, **policy: object
) -> tuple[Typist, list, FakeFocus, Clock]:
    log: list[tuple[str, str, str | None]] = []
    focus = FakeFocus(info)
    clock = Clock()
    outputs: dict[OutputMethod, TextOutput] = {
        K: RecordingOutput("keys", log),
        C: RecordingOutput("paste", log),
    }
    typist = Typist(
        OutputPolicy(**policy),
        outputs,
        focus,
        own_pid=42,  # type: ignore[arg-type]
        clock=clock,
    )
    return typist, log, focus, clock


def test_outputs_satisfy_the_interface() -> None:
    assert isinstance(KeystrokeOutput(sender=FakeSender([])), TextOutput)
    assert isinstance(ClipboardPasteOutput(FakeClipboard(), FakeSender([])), TextOutput)


def test_method_per_text_and_spacing() -> None:
    typist, log, _, clock = make()
    r1 = typist.type_final("Hello there.")
    clock.t += 2
    r2 = typist.type_final("今天天气很好。")
    clock.t += 2
    r3 = typist.type_final("我们去公园散步。")
    clock.t += 2
    r4 = typist.type_final("OK then")
    assert [(r.method, r.typed) for r in (r1, r2, r3, r4)] == [
        (K, "Hello there."),
        (C, "今天天气很好。"),  # no space before CJK
        (C, "我们去公园散步。"),
        (K, "OK then"),  # no space after CJK
    ]
    assert log[1] == ("paste", "今天天气很好。", "ctrl+v")
    assert all(r.ok and r.target == EDITOR and not r.skipped_own_window for r in (r1, r2))


def test_space_between_english_utterances_reset_by_focus_and_pause() -> None:
    typist, _, focus, clock = make()
    typist.type_final("first")
    clock.t += 1
    assert typist.type_final("second").typed == " second"
    focus.info = TERMINAL  # focus change: the caret is somewhere else
    clock.t += 1
    assert typist.type_final("third").typed == "third"
    clock.t += 60  # long pause
    assert typist.type_final("fourth").typed == "fourth"
    clock.t += 1
    typist.reset_spacing()
    assert typist.type_final("fifth").typed == "fifth"


def test_terminal_gets_its_paste_chord_and_app_override() -> None:
    typist, log, focus, _ = make(info=TERMINAL, app_methods={"gedit": C})
    typist.type_final("今天")
    assert log[-1] == ("paste", "今天", "ctrl+shift+v")
    focus.info = EDITOR
    typist.type_final("short")  # ASCII, but the override says paste
    assert log[-1][0] == "paste"


def test_never_types_into_own_window() -> None:
    own = FocusInfo(window_id=99, pid=42, app="tingxie", title="Settings")
    typist, log, _, _ = make(info=own)
    r = typist.type_final("hello")
    assert r.skipped_own_window and r.method is None and not r.ok and log == []


def test_unknown_focus_still_types() -> None:
    typist, log, _, _ = make(info=None)
    r = typist.type_final("hello")
    assert r.ok and r.target is None and log == [("keys", "hello", "ctrl+v")]


def test_failure_is_reported_and_spacing_forgotten() -> None:
    typist, _, _, clock = make()
    typist.type_final("one")
    typist.outputs[K].fail = True  # type: ignore[attr-defined]
    clock.t += 1
    r = typist.type_final("two")
    assert not r.ok and r.error == "OutputError: boom" and r.method is None
    typist.outputs[K].fail = False  # type: ignore[attr-defined]
    assert typist.type_final("three").typed == "three"


def test_missing_output_falls_back() -> None:
    log: list[tuple[str, str, str | None]] = []
    typist = Typist(OutputPolicy(), {C: RecordingOutput("paste", log)}, FakeFocus(EDITOR))
    assert typist.type_final("short ascii").method is C
    with pytest.raises(ValueError):
        Typist(OutputPolicy(), {}, FakeFocus(EDITOR))


def test_reentrant_call_is_queued_in_order() -> None:
    log: list[tuple[str, str, str | None]] = []

    class Reentrant:
        name = "paste"

        def __init__(self) -> None:
            self.typist: Typist | None = None

        def type_text(
            self, text: str, paste_chord: str | None = None, target: OutputTarget | None = None
        ) -> None:
            log.append(("paste", text, paste_chord))
            if text == "first" and self.typist is not None:
                # a Qt slot running inside QtClipboard's local event loop
                inner = self.typist.type_final("second")
                assert inner.deferred

    out = Reentrant()
    typist = Typist(OutputPolicy(method=C), {C: out}, FakeFocus(EDITOR))
    out.typist = typist
    r = typist.type_final("first")
    assert r.ok and [t for _, t, _ in log] == ["first", " second"]


def test_guard_is_active_while_typing() -> None:
    seen: list[bool] = []
    guard = InjectionGuard(tail_s=10)

    class Probe:
        name = "keys"

        def type_text(
            self, text: str, paste_chord: str | None = None, target: OutputTarget | None = None
        ) -> None:
            seen.append(guard.active())

    typist = Typist(OutputPolicy(), {K: Probe()}, FakeFocus(EDITOR), guard=guard)
    assert not guard.active()
    typist.type_final("x")
    assert seen == [True] and guard.active()  # and for the tail after


def test_injection_guard_tail() -> None:
    clock = Clock(0.0)
    g = InjectionGuard(tail_s=0.15, clock=clock)
    assert not g.active()
    with g:
        with g:
            assert g.active()
        assert g.active()
    clock.t = 0.1
    assert g.active()
    clock.t = 0.2
    assert not g.active()


# --- clipboard paste sequencing ---------------------------------------------------------


@dataclass
class FakeClipboard:
    content: ClipboardSnapshot = field(
        default_factory=lambda: ClipboardSnapshot((("text/plain", b"saved"),))
    )
    events: list[str] = field(default_factory=list)
    fail_set: bool = False
    confirm: bool = True  # False: the clipboard did not take our text

    def snapshot(self) -> ClipboardSnapshot:
        self.events.append("snapshot")
        return self.content

    def set_text(self, text: str) -> None:
        if self.fail_set:
            raise OutputError("clipboard busy")
        self.events.append(f"set:{text}")
        self.content = ClipboardSnapshot((("text/plain", text.encode()),))

    def confirm_set(self) -> bool:
        self.events.append(f"confirm:{self.confirm}")
        return self.confirm

    def restore(self, snapshot: ClipboardSnapshot) -> None:
        self.events.append("restore")
        self.content = snapshot

    def wait_for_paste(
        self, sent_at: float, timeout_s: float, reader_pid: int | None = None
    ) -> bool:
        self.events.append(f"wait:{timeout_s}")
        return True


@dataclass
class FakeSender:
    events: list[str]

    def type(self, text: str) -> None:
        self.events.append(f"type:{text}")

    def tap_chord(self, chord: KeySpec) -> None:
        self.events.append(f"chord:{chord}")


def test_paste_sequence_restores_clipboard() -> None:
    cb = FakeClipboard()
    out = ClipboardPasteOutput(cb, FakeSender(cb.events), paste_timeout_s=0.3, settle_s=0)
    out.type_text("今天", paste_chord="Ctrl+Shift+V")
    assert cb.events == [
        "snapshot",
        "set:今天",
        "confirm:True",
        "chord:ctrl+shift+v",
        "wait:0.3",
        "restore",
    ]
    assert cb.content.text == "saved" and out.last_read_observed is True


def test_paste_restores_even_when_setting_fails() -> None:
    cb = FakeClipboard(fail_set=True)
    out = ClipboardPasteOutput(cb, FakeSender(cb.events), settle_s=0)
    with pytest.raises(OutputError):
        out.type_text("x")
    assert cb.events == ["snapshot", "restore"]


def test_empty_text_touches_nothing() -> None:
    cb = FakeClipboard()
    ClipboardPasteOutput(cb, FakeSender(cb.events)).type_text("")
    KeystrokeOutput(FakeSender(cb.events)).type_text("")
    assert cb.events == []


def test_snapshot_text() -> None:
    snap = ClipboardSnapshot((("text/html", b"<b>x</b>"), ("text/plain", "日本".encode())))
    assert snap.text == "日本" and snap.get("text/html") == b"<b>x</b>" and not snap.is_empty
    assert ClipboardSnapshot().text is None and ClipboardSnapshot().is_empty


# --- focus ------------------------------------------------------------------------------


def test_is_own_window() -> None:
    assert is_own_window(FocusInfo(1, 42, "tingxie", ""), own_pid=42)
    assert not is_own_window(FocusInfo(1, 43, "gedit", ""), own_pid=42)
    assert not is_own_window(None, own_pid=42)
    # no pid known (e.g. an X client without _NET_WM_PID): fall back to our window ids
    assert is_own_window(FocusInfo(7, None, "", ""), own_pid=42, own_window_ids={7})
    assert not is_own_window(FocusInfo(8, None, "", ""), own_pid=42, own_window_ids={7})
    assert EDITOR.app_names == ("Gedit", "gedit")
    assert FocusInfo(None, None, "", "").app_names == ()


@dataclass
class FakeWin32:
    hwnd: int = 0x1234
    fail: bool = False

    def foreground_window(self) -> int:
        if self.fail:
            raise OSError("access denied")
        return self.hwnd

    def window_pid(self, hwnd: int) -> int:
        return 4321

    def class_name(self, hwnd: int) -> str:
        return "CASCADIA_HOSTING_WINDOW_CLASS"

    def window_title(self, hwnd: int) -> str:
        return "PowerShell"

    def process_image(self, pid: int) -> str:
        return r"C:\Program Files\WindowsApps\Microsoft.WindowsTerminal\WindowsTerminal.exe"


def test_windows_probe_composition() -> None:
    info = WindowsFocusProbe(FakeWin32()).current()
    assert info == FocusInfo(
        window_id=0x1234,
        pid=4321,
        app="WindowsTerminal.exe",
        title="PowerShell",
        instance="CASCADIA_HOSTING_WINDOW_CLASS",
    )
    assert OutputPolicy().paste_chord_for(info.app_names) == "ctrl+v"
    assert WindowsFocusProbe(FakeWin32(hwnd=0)).current() is None  # secure desktop
    assert WindowsFocusProbe(FakeWin32(fail=True)).current() is None
