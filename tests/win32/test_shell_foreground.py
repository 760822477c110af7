"""The dictation target on Windows: the last real foreground window, never the shell's."""

from __future__ import annotations

from desktop.win32.foreground import ForegroundTracker, TargetFocusProbe
from tests.win32.fake_shell import FakeWindow, FakeWindowApi

OWN_PID = 100
EDITOR, TASKBAR, OVERFLOW, OURS, EDITOR_CHILD, MENU, OTHER = 1, 2, 3, 4, 5, 6, 7


def desktop_with_windows() -> FakeWindowApi:
    return FakeWindowApi(
        windows={
            EDITOR: FakeWindow("Notepad", 200, title="notes.txt", image=r"C:\Windows\notepad.exe"),
            EDITOR_CHILD: FakeWindow("RichEditD2DPT", 200, root=EDITOR),
            TASKBAR: FakeWindow("Shell_TrayWnd", 300),
            OVERFLOW: FakeWindow("NotifyIconOverflowWindow", 300),
            MENU: FakeWindow("#32768", OWN_PID),
            OURS: FakeWindow("Qt6110QWindowIcon", OWN_PID),
            OTHER: FakeWindow("Chrome_WidgetWin_1", 400, image=r"C:\Apps\chrome.exe"),
        }
    )


def test_tray_click_keeps_the_window_that_was_in_front() -> None:
    api = desktop_with_windows()
    tracker = ForegroundTracker(api, OWN_PID)
    api.front = EDITOR
    tracker.on_foreground(EDITOR)
    api.front = TASKBAR  # the click on the tray icon
    tracker.on_foreground(TASKBAR)
    tracker.on_foreground(OVERFLOW)
    assert tracker.target() == EDITOR
    assert tracker.restore() is True
    assert api.calls == [("set_foreground", EDITOR)]
    assert api.front == EDITOR


def test_shell_and_own_windows_are_never_targets() -> None:
    api = desktop_with_windows()
    tracker = ForegroundTracker(api, OWN_PID, own_windows=[OURS])
    for hwnd in (TASKBAR, OVERFLOW, MENU, OURS, 0):
        assert not tracker.is_target(hwnd)
    assert tracker.is_target(EDITOR) and tracker.is_target(OTHER)
    tracker.on_foreground(OURS)
    assert tracker.last is None


def test_a_child_window_counts_as_its_top_level_window() -> None:
    api = desktop_with_windows()
    tracker = ForegroundTracker(api, OWN_PID)
    tracker.on_foreground(EDITOR_CHILD)
    assert tracker.last == EDITOR


def test_the_window_in_front_wins_when_it_is_a_real_target() -> None:
    api = desktop_with_windows()
    tracker = ForegroundTracker(api, OWN_PID)
    tracker.on_foreground(EDITOR)
    api.front = OTHER  # e.g. an event missed while the hook was not yet set
    assert tracker.target() == OTHER
    assert tracker.last == OTHER
    assert tracker.restore() is True
    assert api.calls == []  # already in front: nothing to do


def test_a_closed_target_is_forgotten() -> None:
    api = desktop_with_windows()
    tracker = ForegroundTracker(api, OWN_PID)
    tracker.on_foreground(EDITOR)
    del api.windows[EDITOR]
    api.front = TASKBAR
    assert tracker.target() is None
    assert tracker.restore() is False


def test_windows_may_refuse_to_bring_the_target_back() -> None:
    api = desktop_with_windows()
    api.allow_set_foreground = False
    tracker = ForegroundTracker(api, OWN_PID)
    tracker.on_foreground(EDITOR)
    api.front = TASKBAR
    assert tracker.restore() is False
    assert api.front == TASKBAR


def test_the_focus_probe_describes_the_target_not_the_taskbar() -> None:
    api = desktop_with_windows()
    tracker = ForegroundTracker(api, OWN_PID)
    tracker.on_foreground(EDITOR)
    api.front = TASKBAR
    info = TargetFocusProbe(tracker, api).current()
    assert info is not None
    assert (info.window_id, info.pid, info.app, info.title, info.instance) == (
        EDITOR,
        200,
        "notepad.exe",
        "notes.txt",
        "Notepad",
    )


def test_the_focus_probe_knows_nothing_before_any_real_window() -> None:
    api = desktop_with_windows()
    api.front = TASKBAR
    assert TargetFocusProbe(ForegroundTracker(api, OWN_PID), api).current() is None


def test_a_tray_click_restores_the_target_before_toggling() -> None:
    import os
    from types import SimpleNamespace

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from desktop.app import TingxieApp

    api = desktop_with_windows()
    tracker = ForegroundTracker(api, OWN_PID)
    tracker.on_foreground(EDITOR)
    api.front = TASKBAR
    order: list[str] = []
    app = SimpleNamespace(
        foreground=tracker,
        coordinator=SimpleNamespace(toggle_dictation=lambda: order.append(f"toggle@{api.front}")),
    )
    TingxieApp.toggle_from_tray(app)  # type: ignore[arg-type]
    assert order == [f"toggle@{EDITOR}"]  # the editor was in front when dictation began
    app.foreground = None  # not Windows: just toggles
    TingxieApp.toggle_from_tray(app)  # type: ignore[arg-type]
    assert len(order) == 2


def test_typing_brings_the_target_back_then_describes_the_window_in_front() -> None:
    from desktop.win32.foreground import TypingTargetProbe

    api = desktop_with_windows()
    tracker = ForegroundTracker(api, OWN_PID)
    tracker.on_foreground(EDITOR)
    api.front = OVERFLOW  # the user opened the tray overflow meanwhile
    info = TypingTargetProbe(tracker, api).current()
    assert info is not None and info.window_id == EDITOR
    assert api.calls == [("set_foreground", EDITOR)]


def test_when_windows_refuses_the_typist_sees_where_keys_would_really_go() -> None:
    from desktop.win32.foreground import TypingTargetProbe

    api = desktop_with_windows()
    api.allow_set_foreground = False
    tracker = ForegroundTracker(api, OWN_PID)
    tracker.on_foreground(EDITOR)
    api.front = OURS  # e.g. our settings dialog came to the front
    info = TypingTargetProbe(tracker, api).current()
    assert info is not None and info.window_id == OURS and info.pid == OWN_PID


def test_start_search_is_a_target() -> None:
    api = desktop_with_windows()
    api.windows[42] = FakeWindow("Windows.UI.Core.CoreWindow", 500)
    assert ForegroundTracker(api, OWN_PID).is_target(42)
