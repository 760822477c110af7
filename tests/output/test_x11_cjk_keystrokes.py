"""CJK typed by keystrokes into a real window of another process on X11 (Xvfb + openbox).

The keyboard map has no CJK characters. pynput alone types them garbled in a Qt window
(every third character as the one before it); with
:class:`~desktop.output.keystrokes.X11KeyBorrower` each lands on a spare keycode of its own
and the text arrives exactly, also when a text needs more keycodes than there are spare
and keycodes are mapped anew while the target is still reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop.output.base import InjectionGuard, OutputMethod, TextOutput
from desktop.output.clipboard import ClipboardPasteOutput, XclipClipboard
from desktop.output.focus import X11FocusProbe
from desktop.output.keystrokes import KeystrokeOutput, PynputKeySender, X11KeyBorrower
from desktop.output.policy import OutputPolicy
from desktop.output.typist import Typist
from tests.output import test_x11_typing as x11_typing
from tests.output.test_x11_typing import focused_app, typist_driver, wait_for
from tests.output.x11 import (
    TargetWindow,
    window_manager_caught_up,
    xclip_get,
    xclip_set,
    xdotool,
)

CHINESE = "今天下午三点我们在会议室讨论新版本的发布计划。"
MIXED = "明天的 meeting 改到下午 3 点，请通知 Alice 和 Bob。"
#: 40 distinct characters, none on the keyboard
MANY = "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳云腾致雨露结为霜"
BEFORE = "the user's clipboard"

# the neighbouring tests' fixture: bash in a real xterm
xterm_shell = x11_typing.xterm_shell


@pytest.fixture(scope="module")
def focus_probe(x11: str) -> Iterator[X11FocusProbe]:
    probe = X11FocusProbe()
    yield probe
    probe.close()


@pytest.fixture
def borrower(x11: str) -> Iterator[X11KeyBorrower]:
    b = X11KeyBorrower()
    yield b
    b.close()


def keystroke_typist(probe: X11FocusProbe, borrower: X11KeyBorrower | None) -> Typist:
    guard = InjectionGuard()
    sender = PynputKeySender(guard, borrower=borrower)
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: KeystrokeOutput(sender),
        OutputMethod.CLIPBOARD_PASTE: ClipboardPasteOutput(
            XclipClipboard(), sender, paste_timeout_s=0.3
        ),
    }
    policy = OutputPolicy(method=OutputMethod.KEYSTROKES)
    return Typist(policy, outputs, probe, guard=guard)


@pytest.mark.parametrize("text", [CHINESE, MIXED], ids=["chinese", "mixed"])
def test_cjk_is_typed_exactly_by_keystrokes(
    target: TargetWindow, focus_probe: X11FocusProbe, borrower: X11KeyBorrower, text: str
) -> None:
    xclip_set(BEFORE.encode())
    typist = keystroke_typist(focus_probe, borrower)
    for _ in range(3):  # the second and later times on keycodes mapped already
        target.reset()
        typist.reset_spacing()
        result = typist.type_final(text)
        assert result.ok and result.method is OutputMethod.KEYSTROKES, result
        assert target.wait_text(text) == text
    assert xclip_get() == BEFORE.encode()  # typed, not pasted


def test_the_apps_typist_types_cjk_exactly_by_keystrokes(target: TargetWindow) -> None:
    """The production typist (build_default_typist) in a process of its own, as in the
    tray app, set to keystrokes."""
    xclip_set(BEFORE.encode())
    with typist_driver(MIXED, OutputMethod.KEYSTROKES) as result:
        assert result["error"] is None and result["method"] == "keystrokes", result
        assert target.wait_text(MIXED) == MIXED
    assert xclip_get() == BEFORE.encode()


def test_more_characters_than_spare_keycodes(
    target: TargetWindow, focus_probe: X11FocusProbe, x11: str
) -> None:
    """Four keycodes for 40 characters: each is mapped anew ten times within the text."""
    borrower = X11KeyBorrower(max_keycodes=4)
    try:
        result = keystroke_typist(focus_probe, borrower).type_final(MANY)
        assert result.ok and result.method is OutputMethod.KEYSTROKES, result
        assert target.wait_text(MANY) == MANY
    finally:
        borrower.close()


def test_a_new_borrower_takes_over_the_keycodes_left_mapped(
    target: TargetWindow, focus_probe: X11FocusProbe, x11: str
) -> None:
    """A restarted app finds the spare keycodes mapped by the one before: it uses them."""
    first = X11KeyBorrower()
    try:
        assert keystroke_typist(focus_probe, first).type_final(CHINESE).ok
        assert target.wait_text(CHINESE) == CHINESE
    finally:
        first.close()
    target.reset()
    # as many keycodes as the text has characters: all of them mapped by the first
    second = X11KeyBorrower(max_keycodes=len(set(CHINESE)))
    try:
        result = keystroke_typist(focus_probe, second).type_final(CHINESE)
        assert result.ok, result
        assert target.wait_text(CHINESE) == CHINESE
    finally:
        second.close()


@pytest.fixture(scope="module", autouse=True)
def caught_up(x11: str) -> Iterator[None]:
    """After the module: the window manager has handled the keyboard-map changes, so that
    it stops when told to."""
    yield
    window_manager_caught_up()


def test_the_apps_typist_types_cjk_into_xterm(
    xterm_shell: Path, focus_probe: X11FocusProbe
) -> None:
    """xterm types by keystrokes out of the box (it has no key that pastes the
    clipboard): a mixed sentence reaches bash in it exactly."""
    wait_for(lambda: focused_app(focus_probe) == "xterm", 10, "xterm never got the focus")
    with typist_driver("x " + MIXED) as result:
        assert result["error"] is None and result["method"] == "keystrokes", result
    xdotool("key", "Return")
    ran = xterm_shell / "ran"
    wait_for(ran.exists, 10, "bash never ran the line")
    wait_for(lambda: ran.read_text().endswith("\n"), 5, "x never finished writing")
    assert ran.read_text(encoding="utf-8") == MIXED + "\n"
