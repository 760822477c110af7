"""Wait until the user holds no modifier key before typing or pasting (pure).

Injected key events combine with the keys the user physically holds: the X server (XTest)
and Windows (``SendInput``) both apply the real keyboard state to them. A held Ctrl --
often the next utterance's hold key, pressed while the previous final is still being
typed -- turns typed letters into shortcuts (Ctrl+A selects all, Ctrl+W closes a tab) and
Ctrl+V into Ctrl+Shift+V; a held Shift upper-cases, a held AltGr picks other characters.
So the key sender waits, bounded, until no modifier is down, and gives up with
:class:`ModifiersHeld` (the typist then leaves the text on the clipboard with a notice).

This module decides; a :class:`ModifierProbe` reads the keyboard. On X11 that is
:class:`desktop.output.x11_keyboard.X11ModifierProbe` (QueryKeymap and the modifier
mapping); this module also decodes those replies. Windows has its own twin over
``GetAsyncKeyState`` in :mod:`desktop.win32.keyboard`.

The state is checked once, before a text or a chord is sent: a modifier pressed while
the keys are going out is not seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from desktop.output.base import OutputError

log = logging.getLogger(__name__)

#: How long to wait for the user to let go before giving up (the Windows sender's too).
DEFAULT_WAIT_S = 1.5
POLL_S = 0.01


class ModifiersHeld(OutputError):
    """A modifier stayed held past the wait: typing now would make shortcuts. ``held``
    names the keys."""

    def __init__(self, message: str, held: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.held = held


class ModifierProbe(Protocol):
    """Reads which modifier keys are down now."""

    def held(self) -> tuple[str, ...]:
        """The names of the modifier keys down now; () when none, or when the state cannot
        be read (then typing goes ahead, as it did before there was a probe)."""
        ...


def wait_until_released(
    held: Callable[[], tuple[str, ...]],
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = POLL_S,
) -> tuple[str, ...]:
    """Poll ``held`` until it reports nothing or ``timeout_s`` passed; what is still held
    (() once all were released). Reads at least once, and once more at the deadline."""
    deadline = clock() + timeout_s
    while True:
        now_held = held()
        if not now_held:
            return ()
        remaining = deadline - clock()
        if remaining <= 0:
            return now_held
        sleep(min(poll_s, remaining))


@dataclass
class ModifierWait:
    """What a key sender calls before it sends: returns at once when no modifier is held,
    waits up to ``timeout_s`` for the user to release them, else raises
    :class:`ModifiersHeld`. ``waited_s`` is the last wait, for logs and tests."""

    probe: ModifierProbe
    timeout_s: float = DEFAULT_WAIT_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    poll_s: float = POLL_S
    waited_s: float = field(default=0.0, init=False)

    def __call__(self) -> None:
        start = self.clock()
        still = wait_until_released(
            self.probe.held, self.timeout_s, clock=self.clock, sleep=self.sleep, poll_s=self.poll_s
        )
        self.waited_s = self.clock() - start
        if still:
            raise ModifiersHeld(
                f"modifier keys still held after {self.timeout_s:g} s: {', '.join(still)}",
                still,
            )
        if self.waited_s > 0:
            log.debug("waited %.3f s for modifier keys to be released", self.waited_s)


# --- X11: decoding QueryKeymap and GetModifierMapping ---------------------------------

#: X11 modifier-mapping rows (X protocol order): Shift, Lock, Control, Mod1 ... Mod5.
LOCK_ROW = 1

#: Keysyms of the keys that *toggle* a modifier: whether one is physically down does not
#: change what typed keys produce (the toggled state does, and a typist cannot wait it
#: away), so they are never waited for. Num Lock usually sits on Mod2.
LOCK_KEYSYMS = frozenset(
    (
        0xFFE5,  # Caps_Lock
        0xFFE6,  # Shift_Lock
        0xFF7F,  # Num_Lock
        0xFF14,  # Scroll_Lock
        0xFE04,  # ISO_Level3_Lock
        0xFE13,  # ISO_Level5_Lock
    )
)

#: Names of the usual modifier keysyms, for messages.
KEYSYM_NAMES: Mapping[int, str] = {
    0xFFE1: "Shift_L",
    0xFFE2: "Shift_R",
    0xFFE3: "Control_L",
    0xFFE4: "Control_R",
    0xFFE7: "Meta_L",
    0xFFE8: "Meta_R",
    0xFFE9: "Alt_L",
    0xFFEA: "Alt_R",
    0xFFEB: "Super_L",
    0xFFEC: "Super_R",
    0xFFED: "Hyper_L",
    0xFFEE: "Hyper_R",
    0xFF7E: "Mode_switch",
    0xFE03: "ISO_Level3_Shift",
    0xFE11: "ISO_Level5_Shift",
}


def modifier_keycodes(
    mapping: Sequence[Iterable[int]], keysym_of: Callable[[int], int]
) -> dict[int, str]:
    """The keycodes that act as modifiers, with a name for each, from the reply to
    GetModifierMapping (8 rows of keycodes, 0 for an unused slot) and each keycode's
    first keysym. The Lock row and lock keys on other rows are left out."""
    codes: dict[int, str] = {}
    for row, keycodes in enumerate(mapping):
        if row == LOCK_ROW:
            continue
        for keycode in keycodes:
            if keycode == 0 or keycode in codes:
                continue
            keysym = keysym_of(keycode)
            if keysym in LOCK_KEYSYMS:
                continue
            codes[keycode] = KEYSYM_NAMES.get(keysym, f"keycode {keycode}")
    return codes


def pressed_keycodes(keymap: Sequence[int]) -> frozenset[int]:
    """The keycodes down in a QueryKeymap reply: 32 bytes, bit ``k % 8`` of byte
    ``k // 8`` set for keycode ``k``."""
    return frozenset(
        8 * i + bit for i, byte in enumerate(keymap) for bit in range(8) if byte >> bit & 1
    )


def held_modifiers(keymap: Sequence[int], modifiers: Mapping[int, str]) -> tuple[str, ...]:
    """The names of the modifier keys down in ``keymap``, in keycode order."""
    down = pressed_keycodes(keymap)
    return tuple(modifiers[k] for k in sorted(down) if k in modifiers)
