"""The Windows hotkey chain: Raw Input records → shell thread → listener → commands.

In-process: the shell thread runs its (fake) message loop and the listener its worker;
WM_INPUT / WM_WTSSESSION_CHANGE arrive as they would from Windows, key state comes from
the fake's GetAsyncKeyState. Waits poll with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from desktop.hotkey.debounce import DebounceConfig
from desktop.hotkey.listener import HotkeyListener
from desktop.hotkey.router import Routed
from desktop.output.base import InjectionGuard
from desktop.win32.rawinput import TINGXIE_EXTRA_INFO
from desktop.win32.shell import WM_WTSSESSION_CHANGE, WTS_SESSION_LOCK, ShellThread
from tests.win32.fake_shell import FakeShellApi, raw_key

CFG = DebounceConfig(release_grace_s=0.03, min_hold_s=0.05)
VK_CONTROL, VK_RCONTROL, VK_C = 0x11, 0xA3, 0x43


class Commands:
    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, routed: Routed) -> None:
        with self.lock:
            self.got.append((routed.binding, routed.command.kind.value))

    def wait_for(self, n: int, timeout: float = 3.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.005)
        with self.lock:
            return list(self.got)


Rig = tuple[FakeShellApi, Commands, InjectionGuard]


@pytest.fixture
def rig() -> Iterator[Rig]:
    api, commands, guard = FakeShellApi(), Commands(), InjectionGuard(tail_s=0.0)
    listener = HotkeyListener(
        {"hold": "ctrl_r"},
        commands,
        config=CFG,
        ignore_while=guard.active,
        backend=ShellThread(api),
    )
    listener.start()
    yield api, commands, guard
    listener.stop()
    assert api.loop_done.is_set()


def right_ctrl(api: FakeShellApi, down: bool, **kw: int) -> None:
    api.deliver_key(raw_key(VK_CONTROL, down, make_code=0x1D, e0=True, **kw))
    if down:
        api.keys_down.add(VK_RCONTROL)
    else:
        api.keys_down.discard(VK_RCONTROL)


def test_hold_right_ctrl(rig: Rig) -> None:
    api, commands, _ = rig
    right_ctrl(api, True)
    assert commands.wait_for(1) == [("hold", "press")]
    time.sleep(0.1)
    right_ctrl(api, False)
    assert commands.wait_for(2) == [("hold", "press"), ("hold", "release")]


def test_right_ctrl_c_is_a_shortcut_not_dictation(rig: Rig) -> None:
    api, commands, _ = rig
    right_ctrl(api, True)
    api.deliver_key(raw_key(VK_C, True, make_code=0x2E))
    api.deliver_key(raw_key(VK_C, False, make_code=0x2E))
    right_ctrl(api, False)
    assert commands.wait_for(2) == [("hold", "press"), ("hold", "cancel")]


def test_win_l_cancels_the_hold(rig: Rig) -> None:
    api, commands, _ = rig
    right_ctrl(api, True)
    assert commands.wait_for(1) == [("hold", "press")]
    api.deliver(WM_WTSSESSION_CHANGE, WTS_SESSION_LOCK)
    assert commands.wait_for(2) == [("hold", "press"), ("hold", "cancel")]


def test_release_over_an_elevated_window_ends_the_hold(rig: Rig) -> None:
    api, commands, _ = rig
    right_ctrl(api, True)
    assert commands.wait_for(1) == [("hold", "press")]
    time.sleep(0.1)
    api.keys_down.discard(VK_RCONTROL)  # released; Windows never sent us the release
    assert commands.wait_for(2) == [("hold", "press"), ("hold", "release")]


def test_our_own_typing_never_starts_a_hold(rig: Rig) -> None:
    api, commands, guard = rig
    with guard:
        # the typist's Ctrl+V: marked records are dropped outright
        for down in (True, False):
            api.deliver_key(
                raw_key(VK_CONTROL, down, make_code=0x1D, e0=True, extra=TINGXIE_EXTRA_INFO)
            )
        # a synthesized key from another program (no source device) while we type
        right_ctrl(api, True, device=0)
        right_ctrl(api, False, device=0)
        time.sleep(0.1)
    assert commands.wait_for(1, timeout=0.1) == []
    right_ctrl(api, True)  # the user's own key
    assert commands.wait_for(1) == [("hold", "press")]
