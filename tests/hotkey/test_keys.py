"""Key specs: parsing, the stable settings form, matching."""

from __future__ import annotations

import pytest

from desktop.hotkey.keys import (
    DEFAULT_HOLD_KEY,
    FALLBACK_HOLD_KEYS,
    KeySpec,
    KeySpecError,
    describe_key_spec,
    format_key_spec,
    normalize_key_spec,
    parse_key_spec,
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("f9", "f9"),
        ("F9", "f9"),
        ("ctrl_r", "ctrl_r"),
        ("RightCtrl", "ctrl_r"),
        ("right ctrl", "ctrl_r"),
        ("Control_R", "ctrl_r"),
        ("ctrl+alt+space", "ctrl+alt+space"),
        ("Alt+Ctrl+Space", "ctrl+alt+space"),  # modifier order is normalized
        ("<ctrl>+<alt>+<space>", "ctrl+alt+space"),  # pynput GlobalHotKeys style
        ("control + shift + F5", "ctrl+shift+f5"),
        ("win+h", "cmd+h"),
        ("super+H", "cmd+h"),
        ("ctrl_l+a", "ctrl+a"),  # chord modifiers are side-less
        ("ctrl++", "ctrl++"),
        ("+", "+"),
        ("ctrl+plus", "ctrl++"),
        ("Escape", "esc"),
        ("pause", "pause"),
        ("ctrl+shift_r", "ctrl+shift_r"),  # a sided modifier as the trigger key
        ("vk179", "vk179"),
    ],
)
def test_parse_and_format(text: str, canonical: str) -> None:
    assert normalize_key_spec(text) == canonical
    # the canonical form is a fixed point: settings round-trip unchanged
    assert normalize_key_spec(canonical) == canonical
    assert str(parse_key_spec(text)) == canonical


@pytest.mark.parametrize("bad", ["", "   ", "ctrl+", "a+b", "hyper", "ctrl+foo", "ctrl+ctrl_r"])
def test_bad_specs_are_rejected(bad: str) -> None:
    with pytest.raises(KeySpecError):
        parse_key_spec(bad)


def test_defaults_parse() -> None:
    assert normalize_key_spec(DEFAULT_HOLD_KEY) == "ctrl_r"
    assert parse_key_spec(DEFAULT_HOLD_KEY).is_modifier_only
    for key in FALLBACK_HOLD_KEYS:
        assert not parse_key_spec(key).is_modifier_only


def test_matching() -> None:
    ctrl_r = parse_key_spec("ctrl_r")
    assert ctrl_r.matches("ctrl_r", frozenset())
    assert ctrl_r.matches("ctrl_r", frozenset({"ctrl"}))  # its own modifier may be counted
    assert not ctrl_r.matches("ctrl_l", frozenset())
    assert not ctrl_r.matches("ctrl_r", frozenset({"shift"}))
    chord = parse_key_spec("ctrl+alt+space")
    assert chord.matches("space", frozenset({"ctrl", "alt"}))
    assert not chord.matches("space", frozenset({"ctrl"}))
    assert not chord.matches("space", frozenset({"ctrl", "alt", "shift"}))  # exact modifiers
    sideless = parse_key_spec("ctrl")
    assert sideless.matches("ctrl_l", frozenset()) and sideless.matches("ctrl_r", frozenset())
    assert parse_key_spec("f9").matches("f9", frozenset()) is True


def test_describe() -> None:
    assert describe_key_spec(parse_key_spec("ctrl_r")) == "Right Ctrl"
    assert describe_key_spec(parse_key_spec("ctrl+alt+space")) == "Ctrl+Alt+Space"
    assert describe_key_spec(parse_key_spec("f9")) == "F9"
    assert describe_key_spec(parse_key_spec("cmd+h")) == "Super+H"
    assert format_key_spec(KeySpec("a", frozenset({"shift", "ctrl"}))) == "ctrl+shift+a"


def test_space_character_is_the_space_key() -> None:
    # pynput reports the space bar as the character " "; stripping it must not lose it.
    from desktop.hotkey.keys import canonical_key_name

    assert canonical_key_name(" ") == "space"


def test_right_alt_and_altgr_name_one_key() -> None:
    # pynput on Windows calls Right Alt "alt_gr"; Raw Input and X11 call it "alt_r"
    assert parse_key_spec("alt_gr").matches("alt_r", frozenset())
    assert parse_key_spec("alt_r").matches("alt_gr", frozenset())
    assert not parse_key_spec("alt_gr").matches("alt_l", frozenset())
    assert not parse_key_spec("alt_r").matches("alt_gr", frozenset({"ctrl"}))
