"""From canonical key events to hotkey commands (pure; the listener feeds it).

:class:`HotkeyRouter` tracks which keys are down, matches presses against the configured
bindings (``{"hold": "ctrl_r", "toggle": "ctrl+alt+space"}``), runs one
:class:`~desktop.hotkey.debounce.HoldDebouncer` per binding, cancels a lone-modifier hold
when another key is pressed during it (the user was typing a shortcut such as Right Ctrl+C),
and implements "capture the next key" for the settings dialog.

Key names are canonical (:func:`desktop.hotkey.keys.canonical_key_name`), sided for
modifiers (``ctrl_l``/``ctrl_r``). Times are seconds on one monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from desktop.hotkey.debounce import Command, DebounceConfig, HoldDebouncer
from desktop.hotkey.keys import MODIFIER_KEYS, KeySpec, format_key_spec, parse_key_spec


@dataclass(frozen=True)
class Routed:
    """A command of one binding (``binding`` is the name given in the bindings map)."""

    binding: str
    command: Command


@dataclass
class _Binding:
    spec: KeySpec
    debouncer: HoldDebouncer
    active_key: str | None = None


class HotkeyRouter:
    """Not thread-safe: one thread feeds it (the listener's worker)."""

    def __init__(
        self, bindings: Mapping[str, str | KeySpec], config: DebounceConfig | None = None
    ) -> None:
        self.config = config or DebounceConfig()
        self._down: set[str] = set()
        self._bindings: dict[str, _Binding] = {}
        self._capturing = False
        self._capture_mods: list[str] = []
        self._missed: dict[str, int] = {}  # key → polls in a row that read it as up
        self.misses_to_release = 2
        self.set_bindings(bindings)

    # --- configuration ---

    def set_bindings(
        self, bindings: Mapping[str, str | KeySpec], t: float | None = None
    ) -> list[Routed]:
        """Replace the bindings. A binding held at that moment is cancelled: a CANCEL at
        ``t`` is returned for it (``t=None``: dropped silently, for the initial setup)."""
        out = self.cancel_all(t)
        self._bindings = {
            name: _Binding(
                spec if isinstance(spec, KeySpec) else parse_key_spec(spec),
                HoldDebouncer(self.config),
            )
            for name, spec in bindings.items()
        }
        return out

    @property
    def bindings(self) -> dict[str, str]:
        return {name: format_key_spec(b.spec) for name, b in self._bindings.items()}

    def start_capture(self, t: float | None = None) -> list[Routed]:
        """The next key (chord) pressed is captured instead of firing bindings; a binding
        held now is cancelled (see :meth:`set_bindings`)."""
        out = self.cancel_all(t)
        self._capturing = True
        self._capture_mods = []
        return out

    def cancel_capture(self) -> None:
        self._capturing = False
        self._capture_mods = []

    @property
    def capturing(self) -> bool:
        return self._capturing

    # --- events ---

    def _held_modifiers(self, excluding: str | None = None) -> frozenset[str]:
        return frozenset(
            MODIFIER_KEYS[k] for k in self._down if k in MODIFIER_KEYS and k != excluding
        )

    def press(self, key: str, t: float) -> tuple[list[Routed], str | None]:
        """A key went down. Returns the commands and, in capture mode, the captured spec."""
        out = self.poll(t)
        repeat = key in self._down
        mods = self._held_modifiers(excluding=key)
        self._down.add(key)
        if self._capturing:
            if key in MODIFIER_KEYS:
                if key not in self._capture_mods:
                    self._capture_mods.append(key)
                return out, None
            self.cancel_capture()
            return out, format_key_spec(KeySpec(key, mods))
        for name, b in self._bindings.items():
            if b.debouncer.is_held and b.active_key == key:
                out += self._wrap(name, b.debouncer.press(t))  # auto-repeat / bounce
            elif not repeat and b.spec.matches(key, mods):
                b.active_key = key
                out += self._wrap(name, b.debouncer.press(t))
            elif b.debouncer.is_held and b.spec.is_modifier_only and not repeat:
                out += self._wrap(name, b.debouncer.interrupt(t))
        return out, None

    def release(self, key: str, t: float) -> tuple[list[Routed], str | None]:
        out = self.poll(t)
        self._down.discard(key)
        if self._capturing:
            if self._capture_mods and not any(k in MODIFIER_KEYS for k in self._down):
                # Only modifiers were pressed and now all are up: the last one pressed is
                # the key, the others (side-less) its modifiers ("ctrl_r", "ctrl+shift_r").
                last = self._capture_mods[-1]
                others = frozenset(MODIFIER_KEYS[k] for k in self._capture_mods) - {
                    MODIFIER_KEYS[last]
                }
                self.cancel_capture()
                return out, format_key_spec(KeySpec(last, others))
            return out, None
        for name, b in self._bindings.items():
            if b.active_key == key and b.debouncer.is_held:
                out += self._wrap(name, b.debouncer.release(t))
        return out, None

    def poll(self, t: float) -> list[Routed]:
        out: list[Routed] = []
        for name, b in self._bindings.items():
            out += self._wrap(name, b.debouncer.poll(t))
        return out

    def deadline(self) -> float | None:
        times = [d for b in self._bindings.values() if (d := b.debouncer.deadline()) is not None]
        return min(times) if times else None

    def held_keys(self) -> set[str]:
        """The keys that hold a binding down now (what a key-state poll should watch)."""
        return {
            b.active_key
            for b in self._bindings.values()
            if b.debouncer.is_held and b.active_key is not None and b.active_key in self._down
        }

    def check_held(self, t: float, is_down: Callable[[str], bool | None]) -> list[Routed]:
        """Release held keys the OS says are up although no release event came.

        A release can be lost: Windows delivers no input to us while an elevated window
        or the secure desktop (Win+L, UAC) is in front. The listener polls the key state
        while a hold is active; a key read as up on ``misses_to_release`` polls in a row is
        released at ``t`` (one reading could race a press still on its way to us).
        ``is_down`` returns None where the platform cannot tell: that key is left alone.
        """
        out = self.poll(t)
        for key in sorted(self.held_keys()):
            state = is_down(key)
            if state is None or state:
                self._missed.pop(key, None)
                continue
            self._missed[key] = self._missed.get(key, 0) + 1
            if self._missed[key] >= self.misses_to_release:
                self._missed.pop(key, None)
                out += self.release(key, t)[0]
        return out

    def forget_keys(self, t: float) -> list[Routed]:
        """Cancel every held binding and forget which keys are down (session locked: the
        releases of keys held now will never be seen)."""
        self._down.clear()
        self._missed.clear()
        return self.cancel_all(t)

    def cancel_all(self, t: float | None) -> list[Routed]:
        """Cancel every held binding (at ``t``; None: silently, no commands)."""
        out: list[Routed] = []
        for name, b in self._bindings.items():
            if b.debouncer.is_held and t is not None:
                out += self._wrap(name, b.debouncer.interrupt(t))
            b.debouncer = HoldDebouncer(self.config)
            b.active_key = None
        return out

    @staticmethod
    def _wrap(name: str, commands: list[Command]) -> list[Routed]:
        return [Routed(name, c) for c in commands]
