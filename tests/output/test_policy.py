"""Output policy: method per text and application, paste chords, utterance spacing."""

from __future__ import annotations

import math

import pytest

from desktop.hotkey.keys import NAMED_KEYS, canonical_key_name
from desktop.output.base import OutputMethod
from desktop.output.policy import (
    CARET_KEYS,
    OutputPolicy,
    auto_method,
    is_unspaced_char,
    join_for_typing,
    moves_caret,
    needs_clipboard,
    normalize_app_name,
)

K, C = OutputMethod.KEYSTROKES, OutputMethod.CLIPBOARD_PASTE


@pytest.mark.parametrize(
    ("text", "method"),
    [
        ("hello world, 123", K),
        ("Hello.\tNew line\n", K),
        ("今天天气很好", C),
        ("café", C),
        ("“quoted”", C),
        ("emoji 🙂", C),
        ("bell\x07", C),
        ("x" * 40, K),
        ("x" * 41, C),
    ],
)
def test_auto_method(text: str, method: OutputMethod) -> None:
    assert auto_method(text, 40) is method
    assert OutputPolicy(max_keystroke_chars=40).choose(text) is method


def test_needs_clipboard() -> None:
    assert not needs_clipboard("plain ASCII ~!@#$%^&*()")
    assert needs_clipboard("ß") and needs_clipboard("\x1b")


def test_fixed_method_and_app_overrides() -> None:
    p = OutputPolicy(method=K, app_methods={"Notepad.EXE": C, "KeePassXC": K})
    assert p.choose("今天") is K  # the user's fixed choice applies to any text
    assert p.choose("hi", ["notepad.exe"]) is C
    assert p.choose("hi", ["Notepad"]) is C
    # first matching name wins; unknown names fall through
    assert p.choose("今天", ["Firefox", "keepassxc"]) is K
    auto = OutputPolicy(app_methods={"Slack": OutputMethod.AUTO})
    assert auto.choose("今天", ["slack"]) is C  # AUTO override = no override
    assert OutputPolicy().choose("今天天气", ["XTerm", "xterm"]) is K  # built-in default
    assert OutputPolicy(use_builtin_app_defaults=False).choose("今天天气", ["xterm"]) is C
    assert OutputPolicy(app_methods={"xterm": C}).choose("今天天气", ["xterm"]) is C


def test_paste_chords() -> None:
    p = OutputPolicy(paste_chords={"MyTerm": "ctrl+shift+v", "kitty": "ctrl+v"})
    assert p.paste_chord_for(["Gnome-terminal", "gnome-terminal-server"]) == "ctrl+shift+v"
    assert p.paste_chord_for(["konsole"]) == "ctrl+shift+v"
    assert p.paste_chord_for(["myterm"]) == "ctrl+shift+v"
    assert p.paste_chord_for(["kitty"]) == "ctrl+v"  # user entry beats the default
    assert p.paste_chord_for(["mintty.exe"]) == "shift+insert"
    assert p.paste_chord_for(["firefox"]) == "ctrl+v"
    assert p.paste_chord_for([]) == "ctrl+v"


def test_normalize_app_name() -> None:
    assert normalize_app_name(" WindowsTerminal.exe ") == "windowsterminal"
    assert normalize_app_name("Gnome-terminal") == "gnome-terminal"


@pytest.mark.parametrize(
    ("prev", "new", "expected"),
    [
        (None, "Hello", "Hello"),
        ("", "Hello", "Hello"),
        ("Hello there.", "How are you?", " How are you?"),
        ("hello", "world", " world"),
        ("hello", ", world", ", world"),  # punctuation attaches
        ("hello", ". Next", ". Next"),
        ("hello", "?", "?"),
        ("hello", ")", ")"),
        ("(", "aside", "aside"),
        ("hello ", "world", "world"),  # already spaced
        ("hello", " world", " world"),
        ("line one\n", "line two", "line two"),  # not after a newline
        ("今天天气很好。", "我们去公园。", "我们去公园。"),  # CJK: no spaces
        ("今天", "OK", "OK"),  # not after CJK
        ("OK", "今天", "今天"),  # not before CJK
        ("hello", "，你好", "，你好"),  # fullwidth punctuation
        ("こんにちは", "世界", "世界"),
        ("สวัสดี", "ครับ", "ครับ"),  # Thai is unspaced too
        ("안녕하세요", "감사합니다", " 감사합니다"),  # Hangul uses spaces
        ("Привет", "мир", " мир"),
        ("hello", "", ""),
    ],
)
def test_join_for_typing(prev: str | None, new: str, expected: str) -> None:
    assert join_for_typing(prev, new, 1.0) == expected


def test_join_resets_after_pause_or_focus_change() -> None:
    assert join_for_typing("hello", "world", 19.0) == " world"
    assert join_for_typing("hello", "world", 21.0) == "world"
    assert join_for_typing("hello", "world", 5.0, reset_after_s=3.0) == "world"
    assert join_for_typing("hello", "world", 1.0, focus_changed=True) == "world"
    assert join_for_typing("hello", "world", -1.0) == "world"  # clock went backwards
    assert join_for_typing("hello", "world", math.nan) == "world"


def test_unspaced_chars() -> None:
    assert all(is_unspaced_char(c) for c in "漢字かなカナ。，ㄅ")
    assert not any(is_unspaced_char(c) for c in "aZ1 é한")


@pytest.mark.parametrize(
    "key",
    ["enter", "tab", "esc", "left", "right", "up", "down", "home", "end", "page_up", "page_down"],
)
def test_keys_that_move_the_caret_forget_the_previous_utterance(key: str) -> None:
    assert moves_caret(key)


@pytest.mark.parametrize(
    "key",
    # letters, punctuation and editing keys keep the join; so do modifiers and hold keys
    ["a", ",", ".", "space", "backspace", "delete", "shift_l", "ctrl_r", "alt_gr", "f9", "insert"],
)
def test_typing_and_editing_keys_keep_the_join(key: str) -> None:
    assert not moves_caret(key)


def test_caret_keys_are_canonical_key_names() -> None:
    assert CARET_KEYS <= NAMED_KEYS
    assert {canonical_key_name(k) for k in ("Return", "Escape", "PgUp", "Next")} <= CARET_KEYS


@pytest.mark.parametrize(
    ("vk", "e0", "name"),
    [
        (0x0D, False, "enter"),
        (0x0D, True, "enter"),  # keypad Enter
        (0x09, False, "tab"),
        (0x1B, False, "esc"),
        (0x25, True, "left"),
        (0x26, False, "up"),  # keypad 8 with Num Lock off
        (0x24, True, "home"),
        (0x22, False, "page_down"),  # keypad 3 with Num Lock off
    ],
)
def test_windows_raw_input_names_caret_keys_alike(vk: int, e0: bool, name: str) -> None:
    from desktop.win32.rawinput import key_name

    assert key_name(vk, 0, e0) == name
    assert moves_caret(name)
