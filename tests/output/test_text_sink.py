"""The text sink (pure): hostile finals become visible text only, for every output.

Lane: pure (no threads, sockets or sleeps). The X11 end-to-end proof is in
test_x11_typing.py (``test_hostile_final_*``).
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.output.base import OutputMethod, TextOutput
from desktop.output.clipboard import ClipboardPasteOutput
from desktop.output.keystrokes import KeystrokeOutput
from desktop.output.policy import OutputPolicy
from desktop.output.text_sink import (
    BIDI_CONTROLS,
    LINE_BREAKS,
    ZWJ,
    ZWNJ,
    Change,
    escape_for_terminal,
    is_clean,
    sanitize,
)
from desktop.output.typist import Typist
from tests.output.test_typist_units import (
    EDITOR,
    FakeClipboard,
    FakeFocus,
    FakeSender,
    RecordingOutput,
)

#: What a hostile or broken server might send (issue 12).
HOSTILE = {
    "newline_command": "x\ntouch /tmp/PWNED\nx",
    "bracketed_paste_end": "safe\x1b[201~touch /tmp/PWNED\r",
    "osc52_clipboard": "hi\x1b]52;c;dG91Y2ggL3RtcC9QV05FRA==\x07there",
    "c1_csi": "a\x9b31mb\x9d0;title\x9c",
    "nul_del": "a\x00b\x7fc",
    "rlo": "invoice\u202egnp.exe",
    "backspaces": "rm -rf ~\x08\x08\x08\x08\x08\x08\x08\x08ls",
    "tab_completion": "cd /tm\t",
    "tags": "ok\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065",
}


def forbidden(c: str) -> bool:
    """A code point that must never reach the keyboard or the clipboard (ZWJ/ZWNJ are
    checked separately: allowed only inside a word)."""
    o = ord(c)
    return (
        o < 0x20
        or 0x7F <= o <= 0x9F
        or c in LINE_BREAKS
        or c in BIDI_CONTROLS
        or (unicodedata.category(c) in ("Cf", "Cs") and c not in (ZWJ, ZWNJ))
        or 0xFDD0 <= o <= 0xFDEF
        or (o & 0xFFFE) == 0xFFFE
    )


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_finals_keep_only_visible_text(name: str) -> None:
    r = sanitize(HOSTILE[name])
    assert not any(forbidden(c) for c in r.text), repr(r.text)
    assert r.changed and r.notice is not None


def test_exact_results_for_the_issue_examples() -> None:
    assert sanitize("x\ntouch /tmp/PWNED\nx").text == "x touch /tmp/PWNED x"
    assert sanitize("safe\x1b[201~touch\r").text == "safe[201~touch "
    assert sanitize("a\x00b\x7fc\u202ed\x08").text == "abcd"
    assert sanitize("one\r\n\r\ntwo\u2028three\x85four").text == "one two three four"
    assert sanitize("a\tb").text == "a b"


def test_counts_and_notice() -> None:
    r = sanitize("a\r\nb\nc\x1b\x07\u202e\u200b")
    assert r.changes == (
        (Change.LINE_BREAK, 2),
        (Change.CONTROL, 2),
        (Change.BIDI, 1),
        (Change.INVISIBLE, 1),
    )
    assert r.notice == (
        "Dictated text changed: 2 line breaks typed as spaces; 2 control characters "
        "removed; 1 text-direction control removed; 1 invisible character removed."
    )
    assert r.original_length == 10 and r.count(Change.TAB) == 0


def test_clean_text_is_untouched() -> None:
    for text in (
        "Hello, world! 123",
        "今天天气很好，我们去公园散步。",
        "naïve café — «ok»",
        "😀👍🏽",
    ):
        r = sanitize(text)
        assert r.text == text and not r.changed and r.notice is None and is_clean(text)


def test_joiners_kept_inside_words_removed_elsewhere() -> None:
    persian = "می\u200cخواهم"  # ZWNJ is part of the spelling
    family = "👨\u200d👩\u200d👧"  # one emoji
    devanagari = "क्\u200dष"
    for text in (persian, family, devanagari):
        assert sanitize(text).text == text
    assert sanitize("\u200dword\u200c").text == "word"  # at the edges
    assert sanitize("a \u200d b").text == "a  b"  # next to a space
    assert sanitize("a\u200d\u200db").text == "a\u200db"  # a run keeps one
    assert sanitize("a\u200d\u202eb").text == "ab"  # before another format char
    assert sanitize("a\u200d\nb").text == "a b"


def test_length_cap_with_notice() -> None:
    r = sanitize("abcdefghij", max_chars=4)
    assert r.text == "abcd" and r.truncated and r.count(Change.TRUNCATED) == 6
    assert r.notice == "Dictated text changed: text cut to 4 characters (6 left out)."
    # the cut never leaves a dangling joiner
    assert sanitize("ab\u200dcd", max_chars=3).text == "ab"
    assert sanitize("x" * 50, max_chars=None).text == "x" * 50
    assert not sanitize("abcd", max_chars=4).truncated


def test_escape_for_terminal() -> None:
    assert escape_for_terminal("x\ntouch\r\t") == "x\\ntouch\\r\\t"
    assert escape_for_terminal("\x1b]52;c;aGk=\x07") == "\\x1b]52;c;aGk=\\x07"
    assert escape_for_terminal("\x9b2J") == "\\x9b2J"
    assert escape_for_terminal("abc\u202efed") == "abc\\u202efed"
    assert escape_for_terminal("ok\U000e0041") == "ok\\U000e0041"
    clean = "今天 naïve 👨\u200d👩\u200d👧 می\u200cخواهم"
    assert escape_for_terminal(clean) == clean


# --- properties -------------------------------------------------------------------------

#: Every code point (surrogates included: a JSON "\ud800" decodes to one).
ANY_TEXT = st.text(alphabet=st.characters(codec=None, min_codepoint=0), max_size=200)
#: Weighted towards the interesting ones.
NASTY = st.text(
    alphabet=st.sampled_from(
        [
            *sorted(LINE_BREAKS | BIDI_CONTROLS),
            *("\t", "\x00", "\x08", "\x1b", "\x7f", "\x9b", "\x9d", ZWJ, ZWNJ, "\u200b"),
            *("\ufeff", "a", "Z", "9", " ", ".", "今", "ی", "👨", "\u0301", "\U000e0041", "\ud800"),
        ]
    ),
    max_size=60,
)
PROPS = settings(max_examples=200, deadline=None, database=None)


def _visible(c: str) -> bool:
    """Letters, digits, punctuation, symbols, marks (spaces may be added for breaks)."""
    return unicodedata.category(c)[0] in "LNPSM"


@PROPS
@given(st.one_of(ANY_TEXT, NASTY))
def test_property_no_forbidden_code_point_and_idempotent(text: str) -> None:
    r = sanitize(text)
    out = r.text
    assert not any(forbidden(c) for c in out), repr(out)
    for i, c in enumerate(out):
        if c in (ZWJ, ZWNJ):  # only between two visible non-space characters
            assert 0 < i < len(out) - 1
            assert unicodedata.category(out[i - 1])[0] in "LMNS"
            assert unicodedata.category(out[i + 1])[0] in "LMNS"
    again = sanitize(out)
    assert again.text == out and not again.changed


@PROPS
@given(st.one_of(ANY_TEXT, NASTY))
def test_property_keeps_every_visible_character_in_order(text: str) -> None:
    out = sanitize(text, max_chars=None).text
    assert [c for c in out if _visible(c)] == [c for c in text if _visible(c)]


@PROPS
@given(st.one_of(ANY_TEXT, NASTY), st.integers(min_value=0, max_value=80))
def test_property_cap_is_respected(text: str, cap: int) -> None:
    r = sanitize(text, max_chars=cap)
    assert len(r.text) <= cap
    assert r.truncated == (len(sanitize(text, max_chars=None).text) > cap)


@PROPS
@given(st.one_of(ANY_TEXT, NASTY))
def test_property_terminal_escape_has_no_control(text: str) -> None:
    out = escape_for_terminal(text)
    assert not any(forbidden(c) for c in out), repr(out)
    if is_clean(text):
        assert out == text


# --- every output gets sanitized text ---------------------------------------------------


@pytest.mark.parametrize("method", [OutputMethod.KEYSTROKES, OutputMethod.CLIPBOARD_PASTE])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_typist_hands_every_output_sanitized_text(method: OutputMethod, name: str) -> None:
    log: list[tuple[str, str, str | None]] = []
    outputs: dict[OutputMethod, TextOutput] = {method: RecordingOutput(method.value, log)}
    typist = Typist(OutputPolicy(method=method), outputs, FakeFocus(EDITOR))
    r = typist.type_final(HOSTILE[name])
    assert r.ok and r.notice is not None and r.sink is not None
    assert len(log) == 1 and log[0][1] == r.typed == sanitize(HOSTILE[name]).text
    assert not any(forbidden(c) for c in log[0][1])


def test_typist_caps_and_reports() -> None:
    log: list[tuple[str, str, str | None]] = []
    typist = Typist(
        OutputPolicy(),
        {OutputMethod.KEYSTROKES: RecordingOutput("keys", log)},
        FakeFocus(EDITOR),
        max_chars=5,
    )
    r = typist.type_final("abcdefgh")
    assert r.typed == "abcde" and r.notice is not None and "cut to 5" in r.notice
    assert r.text == "abcdefgh"  # the result keeps what arrived


def test_a_final_of_only_controls_types_nothing() -> None:
    log: list[tuple[str, str, str | None]] = []
    typist = Typist(
        OutputPolicy(), {OutputMethod.KEYSTROKES: RecordingOutput("k", log)}, FakeFocus(EDITOR)
    )
    r = typist.type_final("\x1b\x08\x00\u202e")
    assert log == [] and r.method is None and r.typed == ""
    assert r.notice == (
        "Dictated text changed: 3 control characters removed; 1 text-direction control removed."
    )


def test_outputs_sanitize_even_without_the_typist() -> None:
    events: list[str] = []
    KeystrokeOutput(FakeSender(events)).type_text("a\nb\x1b[201~")
    cb = FakeClipboard(events=events)
    ClipboardPasteOutput(cb, FakeSender(events), settle_s=0).type_text("c\nd\u202e")
    assert events[0] == "type:a b[201~"
    assert "set:c d" in events
    # nothing but controls: neither output does anything
    events.clear()
    KeystrokeOutput(FakeSender(events)).type_text("\r\n")
    assert events == ["type: "]
    events.clear()
    ClipboardPasteOutput(cb, FakeSender(events), settle_s=0).type_text("\x1b\x00")
    assert events == []
