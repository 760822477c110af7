"""Key specs: parse and format the hotkeys stored in settings (pure, no pynput).

A *key spec* is a chord of zero or more modifiers and one trigger key, written in a stable
lower-case form: ``"f9"``, ``"ctrl_r"``, ``"ctrl+alt+space"``. :func:`parse_key_spec`
accepts looser input (``"Ctrl+Alt+Space"``, pynput's ``"<ctrl>+<alt>+<space>"``,
``"RightCtrl"``, ``"control + shift + f5"``); :func:`format_key_spec` always writes the
canonical form, so a value read from QSettings and written back never changes.

Modifiers in a chord are side-less (``ctrl`` matches left or right Ctrl). A trigger key may
be a sided modifier on its own (``"ctrl_r"``): that is a *modifier-only* hotkey, held like
any other key.

Why the default hold-to-talk key is right Ctrl (:data:`DEFAULT_HOLD_KEY`)
--------------------------------------------------------------------------
On X11 the global listener observes keys, it cannot swallow them: pynput has no per-key
suppression (only a grab of the whole keyboard). On Windows a non-modifier hold key or a
chord is reserved with ``RegisterHotKey`` so its press does not reach the focused
application (desktop/win32/shell.py), but a lone modifier cannot be reserved. Whatever key
we choose may therefore also reach the focused application, and while it is held the OS
auto-repeats it into that application.

* **F9** exists on every keyboard and never combines with other keys, but it is an
  application key: held for three seconds it sends ~70 F9 presses to the focused window
  (VS Code/Visual Studio toggle a breakpoint, Excel recalculates, Thunderbird fetches mail,
  some terminals' apps open menus). On many laptops F9 is a media key (brightness,
  mute) unless Fn is held, which makes "hold F9" a two-key chord.
* **Right Ctrl** pressed alone does nothing in practically every application, so its
  auto-repeat is harmless; it is one key for a thumb or little finger on full-size
  keyboards, on X11 and Windows alike (pynput reports it as ``Key.ctrl_r`` on both).
  Its risks: it is a modifier, so the user's own Right-Ctrl shortcuts (Ctrl+C with the right
  hand) would start dictation; we cancel a hold as soon as any other key is pressed during it
  (see :mod:`desktop.hotkey.listener`), so such a shortcut costs a cancelled utterance, not
  typed text. VirtualBox uses it as its default host key. Some laptops (and the 2024+
  "Copilot key" Windows laptops) have no right Ctrl: those users pick another key in the
  settings dialog by pressing it (:data:`FALLBACK_HOLD_KEYS` lists good candidates).

The toggle key (hands-free on/off) has no default: a tap-to-toggle on an application key
is more surprising than useful, and the tray icon already toggles on click.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The default hold-to-talk key (see the module docstring for why).
DEFAULT_HOLD_KEY = "ctrl_r"

#: Good hold keys for keyboards without a right Ctrl, best first.
FALLBACK_HOLD_KEYS = ("f9", "pause", "scroll_lock", "insert", "menu")

#: The default toggle key: none.
DEFAULT_TOGGLE_KEY: str | None = None

#: Chord modifiers, in the order they are written.
MODIFIERS = ("ctrl", "alt", "shift", "cmd")

#: Sided modifier keys and the chord modifier each one counts as.
MODIFIER_KEYS: dict[str, str] = {
    "ctrl": "ctrl",
    "ctrl_l": "ctrl",
    "ctrl_r": "ctrl",
    "alt": "alt",
    "alt_l": "alt",
    "alt_r": "alt",
    "alt_gr": "alt",
    "shift": "shift",
    "shift_l": "shift",
    "shift_r": "shift",
    "cmd": "cmd",
    "cmd_l": "cmd",
    "cmd_r": "cmd",
}

#: Named (non-character) keys, named as pynput's ``Key`` enum names them.
NAMED_KEYS = frozenset(
    {
        *MODIFIER_KEYS,
        "backspace",
        "caps_lock",
        "delete",
        "down",
        "end",
        "enter",
        "esc",
        "home",
        "insert",
        "left",
        "menu",
        "num_lock",
        "page_down",
        "page_up",
        "pause",
        "print_screen",
        "right",
        "scroll_lock",
        "space",
        "tab",
        "up",
        "media_play_pause",
        "media_next",
        "media_previous",
        "media_volume_mute",
        "media_volume_up",
        "media_volume_down",
        *(f"f{n}" for n in range(1, 25)),
    }
)

#: Spellings accepted on input, mapped to the canonical name.
ALIASES: dict[str, str] = {
    "control": "ctrl",
    "ctl": "ctrl",
    "lctrl": "ctrl_l",
    "rctrl": "ctrl_r",
    "leftctrl": "ctrl_l",
    "rightctrl": "ctrl_r",
    "left_ctrl": "ctrl_l",
    "right_ctrl": "ctrl_r",
    "control_l": "ctrl_l",
    "control_r": "ctrl_r",
    "option": "alt",
    "lalt": "alt_l",
    "ralt": "alt_r",
    "leftalt": "alt_l",
    "rightalt": "alt_r",
    "left_alt": "alt_l",
    "right_alt": "alt_r",
    "altgr": "alt_gr",
    "lshift": "shift_l",
    "rshift": "shift_r",
    "leftshift": "shift_l",
    "rightshift": "shift_r",
    "left_shift": "shift_l",
    "right_shift": "shift_r",
    "win": "cmd",
    "super": "cmd",
    "meta": "cmd",
    "command": "cmd",
    "lwin": "cmd_l",
    "rwin": "cmd_r",
    "super_l": "cmd_l",
    "super_r": "cmd_r",
    "escape": "esc",
    "return": "enter",
    "del": "delete",
    "ins": "insert",
    "pgup": "page_up",
    "pgdn": "page_down",
    "pageup": "page_up",
    "pagedown": "page_down",
    "prior": "page_up",
    "next": "page_down",
    "print": "print_screen",
    "printscreen": "print_screen",
    "prtsc": "print_screen",
    "scrolllock": "scroll_lock",
    "capslock": "caps_lock",
    "numlock": "num_lock",
    "break": "pause",
    "apps": "menu",
    "bksp": "backspace",
    "spacebar": "space",
    "plus": "+",
    "minus": "-",
    "comma": ",",
    "period": ".",
    "slash": "/",
}


class KeySpecError(ValueError):
    """A key spec that cannot be parsed."""


@dataclass(frozen=True)
class KeySpec:
    """A hotkey: side-less chord modifiers plus one trigger key.

    ``key`` is a canonical name from :data:`NAMED_KEYS` or a single lower-case character.
    """

    key: str
    modifiers: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return format_key_spec(self)

    @property
    def is_modifier_only(self) -> bool:
        """True for a lone modifier key such as ``ctrl_r``: a chord can interrupt it."""
        return self.key in MODIFIER_KEYS and not self.modifiers

    def matches(self, key: str, held_modifiers: frozenset[str]) -> bool:
        """Whether pressing canonical ``key`` with ``held_modifiers`` (side-less) fires us.

        The trigger itself may be a modifier: when it is, its own side-less modifier is not
        required to be absent from ``held_modifiers`` (the listener may already count it).
        """
        if not _key_matches(self.key, key):
            return False
        held = held_modifiers
        if key in MODIFIER_KEYS:
            held = held - {MODIFIER_KEYS[key]}
        return held == self.modifiers


#: Names of one physical key: Right Alt is ``alt_gr`` to pynput on Windows (and in
#: settings captured there) and ``alt_r`` to Raw Input and X11.
_SAME_KEY = {"alt_gr": "alt_r", "alt_r": "alt_gr"}


def _key_matches(wanted: str, got: str) -> bool:
    if wanted == got or _SAME_KEY.get(wanted) == got:
        return True
    # A side-less modifier trigger ("ctrl") matches either side.
    return wanted in MODIFIERS and MODIFIER_KEYS.get(got) == wanted


def canonical_key_name(name: str) -> str:
    """Canonical name of one key (``"Escape"`` → ``"esc"``, ``"A"`` → ``"a"``).

    Raises :class:`KeySpecError` for unknown names.
    """
    if len(name) == 1 and name.isspace():  # " " must not be stripped to nothing
        return "space"
    raw = name.strip()
    if len(raw) == 1:
        return raw.lower()
    token = raw.lower().strip("<>").replace(" ", "_").replace("-", "_")
    token = ALIASES.get(token, ALIASES.get(token.replace("_", ""), token))
    if token in NAMED_KEYS or len(token) == 1:
        return token
    if token.startswith("vk") and token[2:].isdigit():  # platform virtual-key codes
        return token
    raise KeySpecError(f"unknown key {name!r}")


def parse_key_spec(text: str) -> KeySpec:
    """Parse ``"ctrl+alt+space"``-like text. The last part is the trigger key."""
    source = text.strip()
    if not source:
        raise KeySpecError("empty key spec")
    parts = _split(source)
    if any(not p.strip() for p in parts):
        raise KeySpecError(f"empty part in key spec {text!r}")
    *mods_raw, key_raw = parts
    key = canonical_key_name(key_raw)
    modifiers: set[str] = set()
    for raw in mods_raw:
        name = canonical_key_name(raw)
        if name not in MODIFIER_KEYS:
            raise KeySpecError(f"{raw!r} is not a modifier in {text!r}")
        modifiers.add(MODIFIER_KEYS[name])
    if key in MODIFIER_KEYS and MODIFIER_KEYS[key] in modifiers:
        raise KeySpecError(f"modifier repeated as the trigger key in {text!r}")
    return KeySpec(key=key, modifiers=frozenset(modifiers))


def _split(source: str) -> list[str]:
    """Split on '+', keeping a literal '+' key (``"ctrl++"``, ``"+"``)."""
    if source == "+":
        return ["+"]
    if source.endswith("++"):
        return [*source[:-2].split("+"), "+"]
    return source.split("+")


def format_key_spec(spec: KeySpec) -> str:
    """Canonical text of a spec: modifiers in :data:`MODIFIERS` order, then the key."""
    mods = [m for m in MODIFIERS if m in spec.modifiers]
    return "+".join([*mods, spec.key])


def normalize_key_spec(text: str) -> str:
    """``format_key_spec(parse_key_spec(text))``: the form to store in settings."""
    return format_key_spec(parse_key_spec(text))


def describe_key_spec(spec: KeySpec) -> str:
    """Human label for menus: ``"Right Ctrl"``, ``"Ctrl+Alt+Space"``, ``"F9"``."""
    return "+".join(
        [*(_LABELS.get(m, m.title()) for m in MODIFIERS if m in spec.modifiers), _label(spec.key)]
    )


_LABELS = {"ctrl": "Ctrl", "alt": "Alt", "shift": "Shift", "cmd": "Super"}


def _label(key: str) -> str:
    if len(key) == 1:
        return key.upper()
    if key in MODIFIER_KEYS and "_" in key:
        base, side = key.rsplit("_", 1)
        if side in ("l", "r"):
            return f"{'Left' if side == 'l' else 'Right'} {_LABELS.get(base, base.title())}"
        return "AltGr" if key == "alt_gr" else key
    if key in _LABELS:
        return _LABELS[key]
    if key[0] == "f" and key[1:].isdigit():
        return key.upper()
    return key.replace("_", " ").title()
