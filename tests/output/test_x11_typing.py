"""Typing into a real window of another process on X11 (Xvfb + openbox).

The target is tests/output/target_window.py (a QLineEdit); text goes in through XTest
(pynput) keystrokes or through the CLIPBOARD selection + Ctrl+V; the clipboard is checked
with xclip, as any other X client sees it. The hostile-final tests also type into a real
xterm running bash (skipped where xterm is not installed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from desktop.output.base import InjectionGuard, OutputMethod, TextOutput
from desktop.output.clipboard import ClipboardPasteOutput, XclipClipboard
from desktop.output.focus import X11FocusProbe
from desktop.output.keystrokes import KeystrokeOutput, PynputKeySender
from desktop.output.policy import OutputPolicy
from desktop.output.text_sink import sanitize
from desktop.output.typist import Typist
from tests.output.target_window import CLIP_HTML, CLIP_PRIVATE, CLIP_PRIVATE_TYPE, CLIP_TEXT
from tests.output.x11 import ROOT, TargetWindow, child_env, xclip_get, xclip_set, xdotool

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
        OutputMethod.CLIPBOARD_PASTE: ClipboardPasteOutput(
            XclipClipboard(), sender, paste_timeout_s=0.3
        ),
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


def test_never_types_into_its_own_window(target: TargetWindow, focus_probe: X11FocusProbe) -> None:
    typist = make_typist(focus_probe)
    typist.own_pid = target.pid  # pretend the target is one of our windows
    result = typist.type_final(ASCII)
    assert result.skipped_own_window and result.method is None
    time.sleep(0.2)
    assert target.text() == ""


@contextmanager
def typist_driver(
    text: str, method: OutputMethod = OutputMethod.CLIPBOARD_PASTE
) -> Iterator[dict[str, Any]]:
    """The production typist in its own process (tests/output/qt_typist_driver.py) types
    ``text`` with ``method``; yields its RESULT while the process still runs (it owns the
    restored clipboard), then tells it to quit."""
    driver = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/output/qt_typist_driver.py"),
            json.dumps(text),
            method.value,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
        encoding="utf-8",
    )
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline()
        assert line.startswith("RESULT "), line
        yield json.loads(line[7:])
    finally:
        if driver.poll() is None:
            assert driver.stdin is not None
            driver.stdin.write("quit\n")
            driver.stdin.flush()
        driver.wait(10)


def test_qt_clipboard_paste_keeps_every_format(target: TargetWindow) -> None:
    """The real app's path: QtClipboard on the Qt main thread of another process. The
    clipboard before holds three formats (owned by the target process); all come back."""
    assert target.command("setclip") == "OK"
    assert xclip_get() == CLIP_TEXT.encode()
    with typist_driver(CHINESE) as result:
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


# --- hostile finals (issue 12): nothing but the visible text arrives --------------------


def hostile_final(pwned: Path) -> str:
    """What a compromised server sent in the issue: a command between newlines, the end of
    bracketed paste followed by another command, backspaces, NUL, U+202E, an OSC 52
    clipboard write, a tab."""
    return (
        f"x\ntouch {pwned}\nx\x1b[201~\x08\x08 a\u202eb\x00c\x1b]52\x07 end\tz\r\n"
        f"\x1b[201~\ntouch {pwned}\n"
    )


@pytest.mark.parametrize("method", [OutputMethod.KEYSTROKES, OutputMethod.CLIPBOARD_PASTE])
def test_hostile_final_reaches_a_text_field_as_visible_text(
    target: TargetWindow, focus_probe: X11FocusProbe, tmp_path: Path, method: OutputMethod
) -> None:
    final = hostile_final(tmp_path / "PWNED")
    expected = sanitize(final).text
    assert "touch" in expected and "\n" not in expected  # the visible part is kept
    xclip_set(BEFORE.encode())
    result = make_typist(focus_probe, method=method).type_final(final)
    assert result.ok and result.method is method and result.typed == expected, result
    assert result.notice is not None and "line breaks typed as spaces" in result.notice
    assert target.wait_text(expected) == expected
    assert xclip_get() == BEFORE.encode()


@pytest.fixture
def xterm_shell(x11: str, tmp_path: Path) -> Iterator[Path]:
    """A focused xterm running bash whose command ``x`` writes its arguments to
    ``tmp_path/ran``; yields ``tmp_path``."""
    if shutil.which("xterm") is None:
        pytest.skip("xterm is not installed (apt install xterm)")
    rc = tmp_path / "rc"
    rc.write_text(
        "PS1='$ '\nunset PROMPT_COMMAND HISTFILE\n"
        "bind 'set enable-bracketed-paste on'\n"
        f"x() {{ printf '%s\\n' \"$*\" > {tmp_path}/ran; }}\n"
        f"touch {tmp_path}/ready\n"
    )
    title = f"tingxie-xterm-{os.getpid()}"
    # Ctrl+Shift+V pastes CLIPBOARD, as in the terminals that have a paste key
    paste_key = "XTerm*VT100.translations: #override Shift Ctrl <Key>V: insert-selection(CLIPBOARD)"
    proc = subprocess.Popen(
        [
            "xterm",
            "-xrm",
            "XTerm*allowSendEvents: true",
            "-xrm",
            paste_key,
            "-T",
            title,
            "-e",
            "bash",
            "--noprofile",
            "--rcfile",
            str(rc),
            "-i",
        ],
        env={**child_env(), "HOME": str(tmp_path)},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), 20, "bash in xterm never started")
        out = subprocess.run(
            ["xdotool", "search", "--sync", "--name", title],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        window = out.stdout.split()[0]
        xdotool("windowactivate", "--sync", window)
        yield tmp_path
    finally:
        proc.terminate()
        proc.wait(10)


def wait_for(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.02)


@pytest.mark.parametrize("method", [OutputMethod.KEYSTROKES, OutputMethod.CLIPBOARD_PASTE])
def test_hostile_final_runs_no_command_in_a_terminal(
    xterm_shell: Path, focus_probe: X11FocusProbe, method: OutputMethod
) -> None:
    """Typed (keystrokes) or pasted (Ctrl+Shift+V, bracketed paste on in bash) into bash
    in xterm, the final stays one line at the prompt: the test presses Enter itself, and
    bash runs exactly one command, ``x``, whose arguments are the visible text. Had a
    newline been pressed, ``x`` would have run with no arguments and ``touch`` would have
    made the file; had the pasted ``ESC[201~`` reached bash, it would have ended the
    bracketed paste and the newline after it would have run the second ``touch``."""
    pwned = xterm_shell / "PWNED"
    final = hostile_final(pwned)
    wait_for(lambda: focused_app(focus_probe) == "xterm", 10, "xterm never got the focus")
    typist = make_typist(
        focus_probe, app_methods={"xterm": method}, paste_chords={"xterm": "ctrl+shift+v"}
    )
    result = typist.type_final(final)
    assert result.ok and result.method is method, result
    xdotool("key", "Return")  # the user's own Enter
    ran = xterm_shell / "ran"
    wait_for(ran.exists, 10, "bash never ran the line")
    wait_for(lambda: ran.read_text().endswith("\n"), 5, "x never finished writing")
    words = sanitize(final).text.split()
    assert words[0] == "x" and words.count("touch") == 2
    assert ran.read_text() == " ".join(words[1:]) + "\n"
    assert not pwned.exists()


def focused_app(probe: X11FocusProbe) -> str:
    info = probe.current()
    return info.app.lower() if info is not None else ""


def test_production_typist_types_a_hostile_final_into_a_terminal(
    xterm_shell: Path, focus_probe: X11FocusProbe
) -> None:
    """The app's own typist (build_default_typist: pynput, QtClipboard, the X11 focus
    probe) in a process of its own, as in the tray app, with the hostile final."""
    pwned = xterm_shell / "PWNED"
    final = hostile_final(pwned)
    wait_for(lambda: focused_app(focus_probe) == "xterm", 10, "xterm never got the focus")
    with typist_driver(final) as result:
        # xterm has no CLIPBOARD paste key: the built-in table types there
        assert result["error"] is None and result["method"] == "keystrokes", result
        assert result["typed"] == sanitize(final).text
    xdotool("key", "Return")
    ran = xterm_shell / "ran"
    wait_for(ran.exists, 10, "bash never ran the line")
    wait_for(lambda: ran.read_text().endswith("\n"), 5, "x never finished writing")
    assert ran.read_text() == " ".join(sanitize(final).text.split()[1:]) + "\n"
    assert not pwned.exists()
