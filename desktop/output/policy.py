"""Output policy (pure): which method types a text, which paste chord a target needs, and
the spacing between consecutive utterances (and which keys of the user's reset it).

Method choice (:meth:`OutputPolicy.choose`):

1. a per-application override (window class / executable name → method) wins;
2. otherwise a fixed user choice (keystrokes or clipboard paste) applies;
3. otherwise (``AUTO``) text with any non-ASCII character (CJK, accents, typographic
   quotes, emoji) or longer than ``max_keystroke_chars`` is pasted; short ASCII is typed.

Why: synthetic keystrokes are the least intrusive (the clipboard is untouched and every
application accepts them) but on X11 each character missing from the keyboard map must be
typed on a spare keycode mapped for it, which every X client then reloads its keymap for,
and mapped anew while a target still reads it once the spare keycodes run out (the
keystroke sender paces that, :class:`~desktop.output.keystrokes.X11KeyBorrower`; CJK typed
by keystrokes is exact). Typing is also slow for long text (a round trip per character)
and races with the user's own keys. Paste is exact and fast for any text, at the cost of
borrowing the clipboard.

Application names are compared after :func:`normalize_app_name` (lower case, no ``.exe``),
against every name the focus probe reports for a window (X11 WM_CLASS class and instance;
Windows executable and window class).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from desktop.output.base import OutputMethod

#: Paste chords of applications where plain Ctrl+V does not paste the clipboard.
DEFAULT_PASTE_CHORDS: Mapping[str, str] = {
    # X11 / Wayland terminals (WM_CLASS class or instance): Ctrl+V is ^V there.
    **dict.fromkeys(
        (
            "gnome-terminal",
            "gnome-terminal-server",
            "org.gnome.console",
            "kgx",
            "org.gnome.ptyxis",
            "ptyxis",
            "konsole",
            "yakuake",
            "xfce4-terminal",
            "terminator",
            "tilix",
            "com.gexperts.tilix",
            "alacritty",
            "kitty",
            "wezterm",
            "wezterm-gui",
            "org.wezfurlong.wezterm",
            "foot",
            "footclient",
            "terminology",
            "lxterminal",
            "mate-terminal",
            "qterminal",
            "guake",
            "tilda",
            "sakura",
            "io.elementary.terminal",
            "st",
            "st-256color",
            "ghostty",
            "com.mitchellh.ghostty",
        ),
        "ctrl+shift+v",
    ),
    # Windows terminals that paste the clipboard with Shift+Insert, not Ctrl+V.
    "mintty": "shift+insert",
    "putty": "shift+insert",
}

#: Per-application method defaults. xterm and rxvt have no key that pastes CLIPBOARD
#: (Shift+Insert pastes PRIMARY), so text is typed there, CJK included.
DEFAULT_APP_METHODS: Mapping[str, OutputMethod] = {
    "xterm": OutputMethod.KEYSTROKES,
    "uxterm": OutputMethod.KEYSTROKES,
    "urxvt": OutputMethod.KEYSTROKES,
    "rxvt": OutputMethod.KEYSTROKES,
}

#: Applications that read the clipboard late after the paste chord: Electron and Chromium
#: apps, remote desktops and VMs (which first copy the clipboard to the other side). The
#: restore waits this long for their read instead of the output's default.
DEFAULT_READ_TIMEOUTS_S: Mapping[str, float] = {
    **dict.fromkeys(
        ("code", "slack", "discord", "teams", "ms-teams", "obsidian", "notion", "signal"),
        1.5,
    ),
    **dict.fromkeys(
        ("mstsc", "msrdc", "vmconnect", "vmware", "vmware-remotemks", "virtualboxvm", "wfica32"),
        3.0,
    ),
}

DEFAULT_PASTE_CHORD = "ctrl+v"
DEFAULT_MAX_KEYSTROKE_CHARS = 40
#: After this long without typing, the next utterance starts without a joining space.
DEFAULT_SPACING_RESET_S = 20.0


def normalize_app_name(name: str) -> str:
    """Lower case without ``.exe``: ``"WindowsTerminal.exe"`` → ``"windowsterminal"``."""
    n = name.strip().lower()
    if n.endswith(".exe"):
        n = n[:-4]
    return n


def needs_clipboard(text: str) -> bool:
    """True if AUTO pastes ``text`` whatever its length: any non-ASCII character (on X11
    keystrokes type those only on keycodes mapped for them, slower, and every X client
    reloads its keymap for each), or an ASCII control character other than newline and
    tab."""
    return any(ord(c) > 0x7E or (ord(c) < 0x20 and c not in "\n\t") for c in text)


def auto_method(text: str, max_keystroke_chars: int = DEFAULT_MAX_KEYSTROKE_CHARS) -> OutputMethod:
    """The AUTO choice: paste for non-ASCII or long text, keystrokes for short ASCII."""
    if needs_clipboard(text) or len(text) > max_keystroke_chars:
        return OutputMethod.CLIPBOARD_PASTE
    return OutputMethod.KEYSTROKES


def _lookup(table: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        hit = table.get(normalize_app_name(name))
        if hit is not None:
            return hit
    return None


@dataclass(frozen=True)
class OutputPolicy:
    """What the user configured. ``app_methods`` and ``paste_chords`` are merged over the
    defaults (user entries win); their keys are normalized on construction."""

    method: OutputMethod = OutputMethod.AUTO
    max_keystroke_chars: int = DEFAULT_MAX_KEYSTROKE_CHARS
    app_methods: Mapping[str, OutputMethod] = field(default_factory=dict)
    paste_chords: Mapping[str, str] = field(default_factory=dict)
    default_paste_chord: str = DEFAULT_PASTE_CHORD
    use_builtin_app_defaults: bool = True
    _methods: dict[str, OutputMethod] = field(init=False, repr=False, compare=False)
    _chords: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        methods: dict[str, OutputMethod] = (
            dict(DEFAULT_APP_METHODS) if self.use_builtin_app_defaults else {}
        )
        methods.update({normalize_app_name(k): v for k, v in self.app_methods.items()})
        chords: dict[str, str] = dict(DEFAULT_PASTE_CHORDS) if self.use_builtin_app_defaults else {}
        chords.update({normalize_app_name(k): v for k, v in self.paste_chords.items()})
        object.__setattr__(self, "_methods", methods)
        object.__setattr__(self, "_chords", chords)

    def override_for(self, app_names: Iterable[str]) -> OutputMethod | None:
        """The per-application method for a window with these names, if any (not AUTO)."""
        for name in app_names:
            hit = self._methods.get(normalize_app_name(name))
            if hit is not None and hit is not OutputMethod.AUTO:
                return hit
        return None

    def choose(self, text: str, app_names: Iterable[str] = ()) -> OutputMethod:
        """KEYSTROKES or CLIPBOARD_PASTE (never AUTO) for ``text`` typed into that app."""
        override = self.override_for(app_names)
        if override is not None:
            return override
        if self.method is not OutputMethod.AUTO:
            return self.method
        return auto_method(text, self.max_keystroke_chars)

    def paste_chord_for(self, app_names: Iterable[str] = ()) -> str:
        return _lookup(self._chords, app_names) or self.default_paste_chord

    def read_timeout_for(self, app_names: Iterable[str] = ()) -> float | None:
        """How long to wait for this app to read a paste (None: the output's default)."""
        if not self.use_builtin_app_defaults:
            return None
        for name in app_names:
            hit = DEFAULT_READ_TIMEOUTS_S.get(normalize_app_name(name))
            if hit is not None:
                return hit
        return None


# --- spacing between utterances -------------------------------------------------------

#: Punctuation that attaches to the preceding text (no space before it).
_CLOSING = frozenset(".,;:!?)]}%…'\"”’»›")
#: Punctuation after which the next word attaches (no space after it).
_OPENING = frozenset("([{“‘«‹¿¡/-")


def is_unspaced_char(c: str) -> bool:
    """True for characters of scripts written without spaces between words: Han,
    Hiragana/Katakana, Bopomofo, CJK and fullwidth punctuation, Thai, Lao, Khmer, Myanmar.
    (Hangul is space-separated and is not included.)"""
    o = ord(c)
    return (
        0x2E80 <= o <= 0x2FDF  # CJK radicals, Kangxi radicals
        or 0x3000 <= o <= 0x30FF  # CJK symbols and punctuation, Hiragana, Katakana
        or 0x3100 <= o <= 0x31FF  # Bopomofo, Katakana phonetic extensions
        or 0x3400 <= o <= 0x4DBF  # CJK extension A
        or 0x4E00 <= o <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= o <= 0xFAFF  # CJK compatibility ideographs
        or 0xFE30 <= o <= 0xFE4F  # CJK compatibility forms
        or 0xFF00 <= o <= 0xFFEF  # fullwidth / halfwidth forms
        or 0x20000 <= o <= 0x3134F  # CJK extensions B–G
        or 0x0E00 <= o <= 0x0EFF  # Thai, Lao
        or 0x1780 <= o <= 0x17FF  # Khmer
        or 0x1000 <= o <= 0x109F  # Myanmar
    )


def _is_closing(c: str) -> bool:
    return c in _CLOSING or unicodedata.category(c) in ("Pe", "Pf")


def _is_opening(c: str) -> bool:
    return c in _OPENING or unicodedata.category(c) in ("Ps", "Pi")


#: Keys that move the caret or end the line (canonical names of
#: :mod:`desktop.hotkey.keys`; keypad Enter and the keypad's arrows arrive under the same
#: names on X11 and Windows). When the user presses one, the caret is no longer where the
#: last utterance ended, so the next one gets no joining space. Printable keys, Backspace
#: and Delete edit in place and keep the join (dictating after typing a comma still joins).
CARET_KEYS = frozenset(
    {"enter", "tab", "esc", "left", "right", "up", "down", "home", "end", "page_up", "page_down"}
)


def moves_caret(key: str) -> bool:
    """True if the user's press of canonical ``key`` forgets the previous utterance."""
    return key in CARET_KEYS


def join_for_typing(
    previous_text_end: str | None,
    new_text: str,
    seconds_since_previous: float,
    *,
    focus_changed: bool = False,
    reset_after_s: float = DEFAULT_SPACING_RESET_S,
) -> str:
    """``new_text`` as it should be typed right after ``previous_text_end``.

    ``previous_text_end`` is the end (at least the last character) of what was typed last
    into the same place, or None if nothing was. A single space is prepended when both
    sides are space-separated script: never after/before CJK (and other unspaced
    scripts), never before closing punctuation (``.,!?)`` …), never after opening
    punctuation or whitespace (a newline included), never when the new text already starts
    with whitespace. After ``reset_after_s`` seconds or a focus change the previous text is
    forgotten (the caret may have moved), so nothing is prepended.
    """
    if not new_text or not previous_text_end:
        return new_text
    if focus_changed or not (0.0 <= seconds_since_previous <= reset_after_s):
        return new_text  # also rejects NaN
    last, first = previous_text_end[-1], new_text[0]
    if last.isspace() or first.isspace():
        return new_text
    if is_unspaced_char(last) or is_unspaced_char(first):
        return new_text
    if _is_closing(first) or _is_opening(last):
        return new_text
    return " " + new_text
