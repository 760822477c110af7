"""The text sink contract (pure): dictated text is text.

Everything the app types, pastes or puts on the clipboard passes :func:`sanitize` first,
whatever the method or platform. A final comes from a server the app cannot fully trust
(a ``ws://`` link on a LAN can be impersonated; a buggy model can emit anything), and a
keystroke injector presses a newline as Enter, a tab as Tab (shell completion, focus
change), a backspace as Backspace; pasted ``ESC [ 2 0 1 ~`` ends a terminal's bracketed
paste. So the sink keeps only what a reader sees:

* **line breaks** (CR, LF, CRLF, VT, FF, NEL, U+2028, U+2029) become one space per run:
  server text never presses Enter (a later voice command may insert a line break as an
  explicit action, never from server text);
* **tab** becomes a space;
* **other controls** are removed: C0 (NUL, BS, ESC, ...), DEL and C1 (CSI 0x9B, OSC 0x9D,
  ...), so no escape sequence can reach a terminal;
* **bidi controls** are removed: embeddings and overrides (U+202A-U+202E), isolates
  (U+2066-U+2069), marks (LRM, RLM, ALM): they reorder what the user sees ("Trojan
  Source") and dictation never needs them;
* **other invisible format characters** (category Cf: zero-width space, word joiner, BOM,
  soft hyphen, invisible math operators, Unicode tag characters used to hide text --
  which also turns a subdivision flag such as England's into a plain black flag, ...),
  lone surrogates and noncharacters are removed. Exception: ZERO WIDTH JOINER and ZERO
  WIDTH NON-JOINER stay where they are part of a word or an emoji sequence -- between two
  letters, marks, digits or symbols (Persian and Indic spelling needs ZWNJ, emoji such as
  family or profession sequences need ZWJ); anywhere else (at an edge, next to a space or
  another format character) they are removed;
* a **length cap**: text longer than ``max_chars`` code points is cut there.

:func:`sanitize` returns a :class:`SanitizedText` that counts each change, so the UI can
show a notice (:attr:`SanitizedText.notice`). It is idempotent and never drops or reorders
a letter, digit, punctuation, symbol, mark or space character (other than the cap).

:func:`escape_for_terminal` is the twin for text printed to a terminal (tingxie-cli): the
same characters are shown escaped (``\\x1b``, ``\\u202e``) instead of removed, so a
printed final can neither act on the terminal (CSI, OSC 52 clipboard writes) nor hide.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

#: Default cap in code points: well above what the longest utterance the server accepts
#: (120 s, protocol.limits) yields when spoken fast.
DEFAULT_MAX_CHARS = 5000

ZWJ = "\u200d"
ZWNJ = "\u200c"
_JOINERS = frozenset((ZWJ, ZWNJ))

#: Line breaks in the sense of Unicode's mandatory breaks (UAX #14 BK/CR/LF/NL).
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")
#: Bidirectional formatting characters (UAX #9): marks, embeddings, overrides, isolates.
BIDI_CONTROLS = frozenset(
    "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


class Change(enum.Enum):
    """What the sink did to a text, each counted in :class:`SanitizedText`."""

    LINE_BREAK = "line_break"  # a run of line breaks typed as one space
    TAB = "tab"  # a tab typed as a space
    CONTROL = "control"  # a C0/C1 control or DEL removed
    BIDI = "bidi"  # a bidi mark/embedding/override/isolate removed
    INVISIBLE = "invisible"  # another format character, surrogate or noncharacter removed
    TRUNCATED = "truncated"  # code points cut by the length cap


_NOTICE_PARTS: dict[Change, tuple[str, str]] = {
    Change.LINE_BREAK: ("line break typed as a space", "line breaks typed as spaces"),
    Change.TAB: ("tab typed as a space", "tabs typed as spaces"),
    Change.CONTROL: ("control character removed", "control characters removed"),
    Change.BIDI: ("text-direction control removed", "text-direction controls removed"),
    Change.INVISIBLE: ("invisible character removed", "invisible characters removed"),
}


@dataclass(frozen=True)
class SanitizedText:
    """The text the sink lets through, and what it changed.

    ``changes`` holds (change, count) pairs in :class:`Change` order, only counts > 0;
    for TRUNCATED the count is the number of code points cut.
    """

    text: str
    original_length: int
    changes: tuple[tuple[Change, int], ...] = ()
    max_chars: int | None = None

    def count(self, change: Change) -> int:
        return next((n for c, n in self.changes if c is change), 0)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def truncated(self) -> bool:
        return self.count(Change.TRUNCATED) > 0

    @property
    def notice(self) -> str | None:
        """One line for the user, or None when the text passed unchanged."""
        parts: list[str] = []
        for change, n in self.changes:
            if change is Change.TRUNCATED:
                parts.append(f"text cut to {self.max_chars} characters ({n} left out)")
            else:
                one, many = _NOTICE_PARTS[change]
                parts.append(f"1 {one}" if n == 1 else f"{n} {many}")
        if not parts:
            return None
        return "Dictated text changed: " + "; ".join(parts) + "."


def _is_noncharacter(o: int) -> bool:
    return 0xFDD0 <= o <= 0xFDEF or (o & 0xFFFE) == 0xFFFE


def classify(c: str) -> Change | None:
    """What the sink does to the single character ``c`` outside a word: None keeps it.

    (ZWJ/ZWNJ classify as INVISIBLE here; :func:`sanitize` keeps them inside words.)
    """
    if c in LINE_BREAKS:
        return Change.LINE_BREAK
    if c == "\t":
        return Change.TAB
    o = ord(c)
    if o < 0x20 or 0x7F <= o <= 0x9F:
        return Change.CONTROL
    if c in BIDI_CONTROLS:
        return Change.BIDI
    cat = unicodedata.category(c)
    if cat in ("Cf", "Cs") or _is_noncharacter(o):
        return Change.INVISIBLE
    return None


def _joins(c: str) -> bool:
    """Characters a ZWJ/ZWNJ may sit between: letters, marks, digits, symbols."""
    return unicodedata.category(c)[0] in "LMNS"


def sanitize(text: str, max_chars: int | None = DEFAULT_MAX_CHARS) -> SanitizedText:
    """``text`` made safe to type or paste (see the module docstring); ``max_chars=None``
    applies no cap."""
    counts = dict.fromkeys(Change, 0)
    out: list[str] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        kind = classify(c)
        if kind is None:
            out.append(c)
        elif kind is Change.LINE_BREAK:
            while i + 1 < n and text[i + 1] in LINE_BREAKS:  # CRLF, blank lines: one space
                i += 1
            out.append(" ")
            counts[kind] += 1
        elif kind is Change.TAB:
            out.append(" ")
            counts[kind] += 1
        elif (
            c in _JOINERS
            and out
            and _joins(out[-1])
            and i + 1 < n
            and classify(text[i + 1]) is None
            and _joins(text[i + 1])
        ):
            out.append(c)
        else:
            counts[kind] += 1
        i += 1
    result = "".join(out)
    if max_chars is not None and len(result) > max_chars:
        counts[Change.TRUNCATED] = len(result) - max_chars
        result = result[:max_chars]
        # a joiner the cut left at the end joins nothing
        while result and result[-1] in _JOINERS:
            result = result[:-1]
            counts[Change.INVISIBLE] += 1
    return SanitizedText(
        text=result,
        original_length=n,
        changes=tuple((c, counts[c]) for c in Change if counts[c]),
        max_chars=max_chars,
    )


def is_clean(text: str) -> bool:
    """True if :func:`sanitize` (without a cap) would leave ``text`` as it is."""
    return sanitize(text, max_chars=None).text == text


def escape_for_terminal(text: str) -> str:
    """``text`` with every character the sink would remove or replace shown as a Python
    escape (``\\n``, ``\\x1b``, ``\\u202e``, ``\\U000e0041``), so printing it cannot move
    the cursor, run a CSI/OSC sequence (OSC 52 writes the clipboard) or reorder the line.
    ZWJ/ZWNJ are printed as they are (harmless to a terminal, needed by some words);
    backslashes are not doubled (this is for reading, not for parsing back)."""
    out: list[str] = []
    for c in text:
        if c in _JOINERS or classify(c) is None:
            out.append(c)
            continue
        o = ord(c)
        if c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif o <= 0xFF:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return "".join(out)
