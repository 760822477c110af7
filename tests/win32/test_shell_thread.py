"""The Windows shell thread against a recording fake: Raw Input → keys, lock, hotkeys.

Each test starts the thread, lets the fake's message loop deliver a script of messages and
joins it: the calls the thread made and the keys it reported are then fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from desktop.hotkey.keys import parse_key_spec
from desktop.win32.rawinput import TINGXIE_EXTRA_INFO
from desktop.win32.shell import (
    FIRST_HOTKEY_ID,
    MOD_ALT,
    MOD_CONTROL,
    MOD_NOREPEAT,
    WM_APP,
    WM_HOTKEY,
    WM_WTSSESSION_CHANGE,
    WTS_SESSION_LOCK,
    ShellThread,
    hotkey_registration,
)
from tests.win32.fake_shell import FakeShellApi, raw_key

VK_CONTROL, VK_MENU, VK_F9, VK_V = 0x11, 0x12, 0x78, 0x56


@dataclass
class Sink:
    events: list[tuple[str, ...]] = field(default_factory=list)

    def key_down(self, name: str, injected: bool = False) -> None:
        self.events.append(("down", name, "injected") if injected else ("down", name))

    def key_up(self, name: str) -> None:
        self.events.append(("up", name))

    def session_locked(self) -> None:
        self.events.append(("locked",))


def run(api: FakeShellApi, **kwargs: object) -> tuple[ShellThread, Sink]:
    sink = Sink()
    shell = ShellThread(api, **kwargs)  # type: ignore[arg-type]
    shell.start(sink, timeout=5)
    shell.stop()  # WM_QUIT: the loop ends after the scripted messages
    assert api.loop_done.is_set()
    return shell, sink


def test_raw_keys_become_named_key_events() -> None:
    api = FakeShellApi()
    api.wm_input(raw_key(VK_CONTROL, True, make_code=0x1D, e0=True))
    api.wm_input(raw_key(VK_CONTROL, True, make_code=0x1D, e0=True))  # auto-repeat
    api.wm_input(raw_key(VK_CONTROL, False, make_code=0x1D, e0=True))
    api.wm_input(raw_key(VK_F9, True, make_code=0x43, device=0))  # synthesized (no device)
    _, sink = run(api)
    assert sink.events == [
        ("down", "ctrl_r"),
        ("down", "ctrl_r"),
        ("up", "ctrl_r"),
        ("down", "f9", "injected"),
    ]


def test_our_own_typed_keys_are_never_reported() -> None:
    api = FakeShellApi()
    api.wm_input(raw_key(VK_CONTROL, True, make_code=0x1D, device=0, extra=TINGXIE_EXTRA_INFO))
    api.wm_input(raw_key(VK_V, True, make_code=0x2F, device=0, extra=TINGXIE_EXTRA_INFO))
    api.wm_input(raw_key(VK_V, False, make_code=0x2F, device=0, extra=TINGXIE_EXTRA_INFO))
    api.wm_input(raw_key(VK_CONTROL, False, make_code=0x1D, device=0, extra=TINGXIE_EXTRA_INFO))
    _, sink = run(api)
    assert sink.events == []


def test_altgr_reports_right_alt_alone() -> None:
    api = FakeShellApi()
    api.wm_input(raw_key(VK_CONTROL, True, make_code=0x1D))  # the layout's fake left Ctrl
    api.wm_input(raw_key(VK_MENU, True, make_code=0x38, e0=True))
    api.wm_input(raw_key(VK_CONTROL, False, make_code=0x1D))
    api.wm_input(raw_key(VK_MENU, False, make_code=0x38, e0=True))
    _, sink = run(api)
    assert sink.events == [
        ("down", "ctrl_l"),
        ("up", "ctrl_l"),
        ("down", "alt_r"),
        ("up", "alt_r"),
    ]


def test_session_lock_is_reported_and_other_changes_are_not() -> None:
    api = FakeShellApi()
    api.script.append((WM_WTSSESSION_CHANGE, 0x8, 0))  # WTS_SESSION_UNLOCK
    api.script.append((WM_WTSSESSION_CHANGE, WTS_SESSION_LOCK, 0))
    _, sink = run(api)
    assert sink.events == [("locked",)]


def test_open_and_close_calls() -> None:
    api = FakeShellApi()
    seen: list[int] = []
    run(api, on_foreground=seen.append)
    assert api.calls == [
        ("create_message_window",),
        ("register_raw_keyboard", 0xABC),
        ("register_session_notification", 0xABC),
        ("hook_foreground",),
        ("post_quit", 4242),
        ("unhook", 0x77),
        ("unregister_session_notification", 0xABC),
        ("destroy_window", 0xABC),
    ]


def test_foreground_events_reach_the_tracker() -> None:
    api = FakeShellApi()
    seen: list[int] = []
    shell = ShellThread(api, on_foreground=seen.append)
    shell.start(Sink(), timeout=5)
    assert api.on_foreground is not None
    api.on_foreground(0x5150)
    shell.stop()
    assert seen == [0x5150]


def test_no_raw_input_is_an_error_at_start() -> None:
    api = FakeShellApi()
    api.raw_input_ok = False
    with pytest.raises(RuntimeError, match="RegisterRawInputDevices"):
        ShellThread(api).start(Sink(), timeout=5)
    assert api.calls[-1] == ("destroy_window", 0xABC)  # the window does not outlive it


def test_without_session_notifications_keys_still_work() -> None:
    api = FakeShellApi()
    api.session_ok = False
    api.wm_input(raw_key(VK_F9, True, make_code=0x43))
    _, sink = run(api)
    assert sink.events == [("down", "f9")]
    assert ("unregister_session_notification", 0xABC) not in api.calls


def test_hotkey_registration_for_suppression() -> None:
    assert hotkey_registration(parse_key_spec("f9")) == (MOD_NOREPEAT, VK_F9)
    assert hotkey_registration(parse_key_spec("insert")) == (MOD_NOREPEAT, 0x2D)
    assert hotkey_registration(parse_key_spec("menu")) == (MOD_NOREPEAT, 0x5D)
    assert hotkey_registration(parse_key_spec("ctrl+alt+space")) == (
        MOD_NOREPEAT | MOD_CONTROL | MOD_ALT,
        0x20,
    )
    # a lone modifier cannot be reserved (and does nothing in applications anyway)
    assert hotkey_registration(parse_key_spec("ctrl_r")) is None
    assert hotkey_registration(parse_key_spec("alt_gr")) is None
    assert hotkey_registration(parse_key_spec("shift+ctrl_r")) is None


def test_suppressed_keys_are_registered_on_the_shell_thread() -> None:
    api = FakeShellApi()
    api.refuse_hotkeys = {0x20}  # another program holds Ctrl+Alt+Space
    shell = ShellThread(api)
    specs = [parse_key_spec(s) for s in ("ctrl_r", "f9", "ctrl+alt+space")]
    shell.suppress(specs)  # before start: queued, run once the window exists
    api.script.append((WM_HOTKEY, FIRST_HOTKEY_ID, 0))  # F9's hotkey, F9 still down
    api.keys_down = {VK_F9}
    sink = Sink()
    shell.start(sink, timeout=5)
    shell.stop()
    assert api.loop_done.is_set()
    registered = [c for c in api.calls if c[0] == "register_hotkey"]
    assert registered == [
        ("register_hotkey", 0xABC, FIRST_HOTKEY_ID, MOD_NOREPEAT, VK_F9),
        ("register_hotkey", 0xABC, FIRST_HOTKEY_ID + 1, MOD_NOREPEAT | MOD_CONTROL | MOD_ALT, 0x20),
    ]
    assert sink.events == [("down", "f9")]
    # only the one that succeeded is unregistered at the end
    assert [c for c in api.calls if c[0] == "unregister_hotkey"] == [
        ("unregister_hotkey", 0xABC, FIRST_HOTKEY_ID)
    ]


def test_rebinding_posts_to_the_window_and_replaces_registrations() -> None:
    api = FakeShellApi()
    shell = ShellThread(api)
    shell.start(Sink(), timeout=5)
    shell.suppress([parse_key_spec("f9")])
    assert ("post_message", 0xABC, WM_APP) in api.calls
    assert api.handler is not None
    api.handler(WM_APP, 0, 0)  # what the window procedure does with the posted message
    shell.suppress([parse_key_spec("f8")])
    api.handler(WM_APP, 0, 0)
    shell.stop()
    hotkey_calls = [c for c in api.calls if c[0] in ("register_hotkey", "unregister_hotkey")]
    assert hotkey_calls == [
        ("register_hotkey", 0xABC, FIRST_HOTKEY_ID, MOD_NOREPEAT, VK_F9),
        ("unregister_hotkey", 0xABC, FIRST_HOTKEY_ID),
        ("register_hotkey", 0xABC, FIRST_HOTKEY_ID, MOD_NOREPEAT, 0x77),
        ("unregister_hotkey", 0xABC, FIRST_HOTKEY_ID),
    ]


def test_a_late_wm_hotkey_after_release_starts_nothing() -> None:
    api = FakeShellApi()
    shell = ShellThread(api)
    shell.suppress([parse_key_spec("f9")])
    api.script.append((WM_HOTKEY, FIRST_HOTKEY_ID, 0))  # F9 already up again
    sink = Sink()
    shell.start(sink, timeout=5)
    shell.stop()
    assert api.loop_done.is_set()
    assert sink.events == []


def test_key_state_reads_the_sided_virtual_key() -> None:
    api = FakeShellApi()
    shell = ShellThread(api)
    api.keys_down = {0xA3}  # VK_RCONTROL
    assert shell.is_down("ctrl_r") is True
    assert shell.is_down("ctrl_l") is False
    assert shell.is_down("no_such_key") is None


def test_a_failing_handler_does_not_kill_the_thread() -> None:
    api = FakeShellApi()
    api.wm_input(raw_key(VK_F9, True, make_code=0x43))
    api.wm_input(raw_key(VK_F9, False, make_code=0x43))

    class Exploding(Sink):
        def key_down(self, name: str, injected: bool = False) -> None:
            raise RuntimeError("consumer bug")

    sink = Exploding()
    shell = ShellThread(api)
    shell.start(sink, timeout=5)
    shell.stop()
    assert api.loop_done.is_set()
    assert sink.events == [("up", "f9")]
