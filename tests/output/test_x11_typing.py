"""Typing into a real window of another process on X11 (Xvfb + openbox).

The target is tests/output/target_window.py (a QLineEdit); text goes in through XTest
(pynput) keystrokes or through the CLIPBOARD selection + Ctrl+V; the clipboard is checked
with xclip, as any other X client sees it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from desktop.output.base import InjectionGuard, OutputMethod, TextOutput
from desktop.output.clipboard import ClipboardPasteOutput, XclipClipboard
from desktop.output.focus import X11FocusProbe
from desktop.output.keystrokes import KeystrokeOutput, PynputKeySender
from desktop.output.policy import OutputPolicy
from desktop.output.typist import Typist
from tests.output.target_window import CLIP_HTML, CLIP_PRIVATE, CLIP_PRIVATE_TYPE, CLIP_TEXT
from tests.output.x11 import ROOT, TargetWindow, child_env, xclip_get, xclip_set

ASCII = "hello world, 123"
CHINESE = "今天天气很好，我们去公园散步。"
BEFORE = "the user's clipboard — 用户的剪贴板"


@pytest.fixture(scope="module")
def focus_probe(x11: str) -> Iterator[X11FocusProbe]:
    probe = X11FocusProbe()
    yield probe
    probe.close()


def make_typist(probe: X11FocusProbe, **policy: object) -> Typist:
    guard = InjectionGuard()
    sender = PynputKeySender(guard)
    outputs: dict[OutputMethod, TextOutput] = {
        OutputMethod.KEYSTROKES: KeystrokeOutput(sender),
        OutputMethod.CLIPBOARD_PASTE: ClipboardPasteOutput(XclipClipboard(), sender,
                                                           paste_timeout_s=0.3),
    }
    return Typist(OutputPolicy(**policy), outputs, probe, guard=guard)  # type: ignore[arg-type]


def test_focus_probe_sees_the_target(target: TargetWindow, focus_probe: X11FocusProbe) -> None:
    info = focus_probe.current()
    assert info is not None
    assert info.window_id == target.window_id
    assert info.pid == target.pid
    assert info.app == "tingxie-target"
    assert info.title == "tingxie test target"


def test_ascii_is_typed_as_keystrokes(target: TargetWindow, focus_probe: X11FocusProbe) -> None:
    xclip_set(BEFORE.encode())
    result = make_typist(focus_probe).type_final(ASCII)
    assert result.method is OutputMethod.KEYSTROKES and result.ok
    assert result.target is not None and result.target.pid == target.pid
    assert target.wait_text(ASCII) == ASCII
    assert xclip_get() == BEFORE.encode()  # keystrokes leave the clipboard alone


def test_chinese_is_pasted_and_the_clipboard_restored(
    target: TargetWindow, focus_probe: X11FocusProbe
) -> None:
    xclip_set(BEFORE.encode())
    result = make_typist(focus_probe).type_final(CHINESE)
    assert result.method is OutputMethod.CLIPBOARD_PASTE and result.ok, result
    assert target.wait_text(CHINESE) == CHINESE
    assert xclip_get() == BEFORE.encode()


def test_ascii_forced_through_the_clipboard(
    target: TargetWindow, focus_probe: X11FocusProbe
) -> None:
    xclip_set(BEFORE.encode())
    result = make_typist(focus_probe, method=OutputMethod.CLIPBOARD_PASTE).type_final(ASCII)
    assert result.method is OutputMethod.CLIPBOARD_PASTE
    assert target.wait_text(ASCII) == ASCII
    assert xclip_get() == BEFORE.encode()


def test_consecutive_utterances_are_joined(
    target: TargetWindow, focus_probe: X11FocusProbe
) -> None:
    typist = make_typist(focus_probe)
    for part in ("Hello there.", "How are you?", "今天天气很好，", "我们去公园散步。", "OK"):
        assert typist.type_final(part).ok
    expected = "Hello there. How are you?今天天气很好，我们去公园散步。OK"
    assert target.wait_text(expected) == expected


def test_never_types_into_its_own_window(
    target: TargetWindow, focus_probe: X11FocusProbe
) -> None:
    typist = make_typist(focus_probe)
    typist.own_pid = target.pid  # pretend the target is one of our windows
    result = typist.type_final(ASCII)
    assert result.skipped_own_window and result.method is None
    time.sleep(0.2)
    assert target.text() == ""


def test_qt_clipboard_paste_keeps_every_format(target: TargetWindow) -> None:
    """The real app's path: QtClipboard on the Qt main thread of another process. The
    clipboard before holds three formats (owned by the target process); all come back."""
    assert target.command("setclip") == "OK"
    assert xclip_get() == CLIP_TEXT.encode()
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/output/qt_typist_driver.py"),
         json.dumps(CHINESE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=child_env(), cwd=ROOT, encoding="utf-8")
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline()
        assert line.startswith("RESULT "), line
        result = json.loads(line[7:])
        assert result["error"] is None and result["method"] == "clipboard_paste"
        assert result["target_pid"] == target.pid
        # the paste was observed (lazy QMimeData read), so the restore did not wait 2 s
        assert result["read_observed"] is True
        assert result["seconds"] < 1.5
        assert target.wait_text(CHINESE) == CHINESE
        # the driver now owns the restored clipboard: every format is back
        targets = (xclip_get("TARGETS") or b"").decode().split()
        assert "text/html" in targets and CLIP_PRIVATE_TYPE in targets
        assert xclip_get() == CLIP_TEXT.encode()
        assert xclip_get("text/html") == CLIP_HTML
        assert xclip_get(CLIP_PRIVATE_TYPE) == CLIP_PRIVATE
    finally:
        if driver.poll() is None:
            assert driver.stdin is not None
            driver.stdin.write("quit\n")
            driver.stdin.flush()
        driver.wait(10)
