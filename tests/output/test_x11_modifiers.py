"""A modifier the user holds while the typist types, on a real X display (Xvfb + openbox).

``xdotool keydown`` holds the key in the X server as a physical one would (XTest); another
thread lets go a moment later. The typist waits for that, then the text arrives plain in
the target window (a QLineEdit of another process). Held Ctrl with no wait would turn
"hello world" into Ctrl+H, Ctrl+E, ... and nothing would arrive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from desktop.output.base import InjectionGuard, OutputMethod, TextOutput
from desktop.output.clipboard import ClipboardPasteOutput, XclipClipboard
from desktop.output.focus import X11FocusProbe
from desktop.output.keystrokes import KeystrokeOutput, PynputKeySender
from desktop.output.modifiers import ModifierWait
from desktop.output.policy import OutputPolicy
from desktop.output.typist import Typist, default_modifier_wait
from desktop.output.x11_keyboard import X11ModifierProbe
from tests.output.x11 import TargetWindow, xclip_get, xclip_set, xdotool

TEXT = "hello world"
CHINESE = "今天天气很好"
BEFORE = "the user's clipboard"


@pytest.fixture(scope="module")
def probe(x11: str) -> Iterator[X11ModifierProbe]:
    p = X11ModifierProbe()
    yield p
    p.close()


@pytest.fixture(scope="module")
def focus_probe(x11: str) -> Iterator[X11FocusProbe]:
    p = X11FocusProbe()
    yield p
    p.close()


@contextmanager
def held(keys: tuple[str, ...], release_after_s: float | None) -> Iterator[list[float]]:
    """Hold ``keys`` down (xdotool keydown); another thread lets them go after
    ``release_after_s`` (None: at the end of the block). Yields a list that gets the
    monotonic time the release began."""
    released_at: list[float] = []
    xdotool("keydown", *keys)

    def release() -> None:
        released_at.append(time.monotonic())  # before: nobody can see the release earlier
        xdotool("keyup", *keys)

    timer: threading.Thread | None = None
    cancel = threading.Event()
    if release_after_s is not None:
        timer = threading.Thread(
            target=lambda: cancel.wait(release_after_s) or release(), daemon=True
        )
        timer.start()
    try:
        yield released_at
    finally:
        cancel.set()
        if timer is not None:
            timer.join(5)
        if not released_at:
            release()


def make_typist(
    focus_probe: X11FocusProbe, probe: X11ModifierProbe, timeout_s: float = 3.0, **policy: object
) -> Typist:
    guard = InjectionGuard()
    wait = ModifierWait(probe, timeout_s=timeout_s)
    sender = PynputKeySender(guard, modifier_wait=wait)
    clipboard = XclipClipboard()
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: KeystrokeOutput(sender),
        OutputMethod.CLIPBOARD_PASTE: ClipboardPasteOutput(clipboard, sender, paste_timeout_s=0.3),
    }
    return Typist(
        OutputPolicy(**policy),  # type: ignore[arg-type]
        outputs,
        focus_probe,
        guard=guard,
        fallback=clipboard,
        modifier_wait=wait,
    )


def test_the_probe_reads_held_modifiers(probe: X11ModifierProbe) -> None:
    assert probe.held() == ()
    with held(("ctrl", "shift"), None):
        assert probe.held() == ("Control_L", "Shift_L")  # in keycode order
    assert probe.held() == ()
    with held(("a",), None):
        assert probe.held() == ()  # not a modifier
    wait = default_modifier_wait()  # what the app's typist uses on X11
    assert wait is not None
    assert isinstance(wait.probe, X11ModifierProbe)
    again = default_modifier_wait()  # a typist rebuilt for new settings: same connection
    assert again is not None and again.probe is wait.probe
    with held(("Control_R",), None):  # (xdotool presses Control_L with it)
        assert "Control_R" in wait.probe.held()


@pytest.mark.parametrize(
    ("keys", "text", "method"),
    [
        (("ctrl",), TEXT, OutputMethod.KEYSTROKES),
        (("shift",), CHINESE, OutputMethod.CLIPBOARD_PASTE),  # Ctrl+V would be Ctrl+Shift+V
    ],
)
def test_typing_waits_until_a_held_modifier_is_released(
    target: TargetWindow,
    focus_probe: X11FocusProbe,
    probe: X11ModifierProbe,
    keys: tuple[str, ...],
    text: str,
    method: OutputMethod,
) -> None:
    xclip_set(BEFORE.encode())
    typist = make_typist(focus_probe, probe)
    with held(keys, release_after_s=0.5) as released_at:
        result = typist.type_final(text)
        finished = time.monotonic()
    assert result.ok and result.method is method, result
    # typing ended only after the other thread let go (without the wait it is done in
    # a few ms, and the key is let go only when this block ends)
    assert released_at and finished >= released_at[0]
    assert target.wait_text(text) == text  # plain: no shortcut, no Shift
    assert xclip_get() == BEFORE.encode()


def test_a_modifier_held_past_the_wait_leaves_the_text_on_the_clipboard(
    target: TargetWindow, focus_probe: X11FocusProbe, probe: X11ModifierProbe
) -> None:
    xclip_set(BEFORE.encode())
    typist = make_typist(focus_probe, probe, timeout_s=0.3)
    with held(("ctrl",), None):
        started = time.monotonic()
        result = typist.type_final(TEXT)
        assert time.monotonic() - started >= 0.3
    assert not result.ok and result.left_on_clipboard, result
    assert result.notice is not None
    assert result.notice.startswith("A modifier key (Control_L) stayed held")
    assert xclip_get() == TEXT.encode()
    # X delivers events in order: once a key sent now has arrived, any key the typist
    # had sent would have arrived before it
    xdotool("type", "z")
    assert target.wait_text("z") == "z"
