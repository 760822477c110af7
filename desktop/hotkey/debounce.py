"""Hold-to-talk debouncing (pure): raw timestamped key events in, commands out.

What the raw events of one held key look like:

* **Auto-repeat.** Windows repeats ``press`` while a key is held (press press press …).
  X11 repeats ``release``+``press`` pairs with the same timestamp, unless the client asked
  for detectable auto-repeat (the XRecord connection pynput uses does not).
* **Bounce.** A worn or cheap switch may report release+press a few milliseconds apart
  while the finger never moved.
* **Taps.** A press shorter than :attr:`DebounceConfig.min_hold_s` is a tap, not a hold:
  an accidental brush of the key, or a deliberate tap the coordinator may use as a toggle.

Commands (:class:`CommandKind`):

* ``PRESS`` at once on the first press: the coordinator starts listening immediately, so
  debouncing adds no latency at the start.
* ``RELEASE`` when the key has been up for the release grace and had been held at least
  ``min_hold_s``; its ``t`` is the time of the raw release (the user's intent), not the
  time the grace ran out.
* ``TAP`` instead of ``RELEASE`` when the hold was shorter than ``min_hold_s``. A tap is
  not thrown away on its length alone: :func:`hold_outcome` keeps it when the VAD heard
  speech in it (a quick "yes" is a short press).
* ``CANCEL`` when the listener reports that the hold turned out to be part of a chord
  (another key pressed while a lone-modifier hotkey is held, e.g. Right Ctrl + C); nothing
  else is emitted for that hold.

Exactly one of ``RELEASE``/``TAP``/``CANCEL`` follows every ``PRESS``.

:func:`hold_outcome` decides what becomes of the audio a finished hold recorded.

:class:`HoldDebouncer` is the incremental state machine (the listener feeds it and calls
:meth:`HoldDebouncer.poll` at :meth:`HoldDebouncer.deadline`); :func:`debounce` runs a
whole recorded event list through it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class CommandKind(enum.Enum):
    PRESS = "press"
    RELEASE = "release"
    TAP = "tap"
    CANCEL = "cancel"


class HoldOutcome(enum.Enum):
    """What becomes of the audio recorded during a hold."""

    KEEP = "keep"  # end the utterance as usual (release tail included) and send it
    DISCARD = "discard"  # drop it: nothing more of it is sent


def hold_outcome(kind: CommandKind, speech_heard: bool) -> HoldOutcome:
    """The fate of a hold that ended with ``kind`` (RELEASE, TAP or CANCEL).

    ``speech_heard``: the VAD heard speech between the press and the end of the release
    tail (the segmenter judges a tap there). A RELEASE keeps the recording (the
    segmenter still drops one without speech); a CANCEL (the key was part of a
    shortcut) discards it; a TAP is discarded only when no speech was heard,
    so a word shorter than ``min_hold_s`` still reaches the server.
    """
    if kind is CommandKind.RELEASE:
        return HoldOutcome.KEEP
    if kind is CommandKind.CANCEL:
        return HoldOutcome.DISCARD
    if kind is CommandKind.TAP:
        return HoldOutcome.KEEP if speech_heard else HoldOutcome.DISCARD
    raise ValueError(f"{kind.value} does not end a hold")


class RawKind(enum.Enum):
    PRESS = "press"
    RELEASE = "release"
    INTERRUPT = "interrupt"


@dataclass(frozen=True)
class RawEvent:
    """One raw event of the hotkey at ``t`` seconds (any monotonic clock)."""

    kind: RawKind
    t: float


@dataclass(frozen=True)
class Command:
    """A debounced command. ``held_s`` is 0 for PRESS, the hold length otherwise."""

    kind: CommandKind
    t: float
    held_s: float = 0.0


@dataclass(frozen=True)
class DebounceConfig:
    """``release_grace_s``: a release followed by a press within it counts as still held.
    ``min_hold_s``: shorter holds are taps."""

    release_grace_s: float = 0.06
    min_hold_s: float = 0.25

    def __post_init__(self) -> None:
        if self.release_grace_s < 0 or self.min_hold_s < 0:
            raise ValueError("debounce times must be >= 0")


class _State(enum.Enum):
    IDLE = "idle"
    HELD = "held"
    RELEASE_PENDING = "release_pending"


class HoldDebouncer:
    """Incremental debouncer for one hotkey. Not thread-safe: feed it from one thread."""

    def __init__(self, config: DebounceConfig | None = None) -> None:
        self.config = config or DebounceConfig()
        self._state = _State.IDLE
        self._pressed_at = 0.0
        self._released_at = 0.0
        self._cancelled = False

    @property
    def is_held(self) -> bool:
        """True between PRESS and its RELEASE/TAP (including the release grace)."""
        return self._state is not _State.IDLE

    def deadline(self) -> float | None:
        """When :meth:`poll` must next be called, or None if nothing is pending."""
        if self._state is _State.RELEASE_PENDING:
            return self._released_at + self.config.release_grace_s
        return None

    def press(self, t: float) -> list[Command]:
        out = self.poll(t)
        if self._state is _State.IDLE:
            self._state = _State.HELD
            self._pressed_at = t
            self._cancelled = False
            out.append(Command(CommandKind.PRESS, t))
        elif self._state is _State.RELEASE_PENDING:
            self._state = _State.HELD  # bounce or X11 auto-repeat pair: still held
        # HELD: auto-repeat press, nothing to do
        return out

    def release(self, t: float) -> list[Command]:
        out = self.poll(t)
        if self._state is _State.HELD:
            self._state = _State.RELEASE_PENDING
            self._released_at = t
            out.extend(self.poll(t))  # a zero grace finishes at once
        return out

    def interrupt(self, t: float) -> list[Command]:
        """Another key was pressed during the hold: cancel it (once)."""
        out = self.poll(t)
        if self._state is not _State.IDLE and not self._cancelled:
            self._cancelled = True
            out.append(Command(CommandKind.CANCEL, t, max(0.0, t - self._pressed_at)))
        return out

    def poll(self, t: float) -> list[Command]:
        """Finish a pending release whose grace has run out by ``t``."""
        deadline = self.deadline()
        if deadline is None or t < deadline:
            return []
        self._state = _State.IDLE
        if self._cancelled:
            return []
        held = max(0.0, self._released_at - self._pressed_at)
        kind = CommandKind.RELEASE if held >= self.config.min_hold_s else CommandKind.TAP
        return [Command(kind, self._released_at, held)]

    def feed(self, event: RawEvent) -> list[Command]:
        if event.kind is RawKind.PRESS:
            return self.press(event.t)
        if event.kind is RawKind.RELEASE:
            return self.release(event.t)
        return self.interrupt(event.t)


def debounce(
    events: Iterable[RawEvent], config: DebounceConfig | None = None, now: float | None = None
) -> list[Command]:
    """All commands for ``events`` (in time order), with pending releases finished by ``now``.

    With ``now=None`` a release still inside its grace at the end stays pending (no command).
    """
    machine = HoldDebouncer(config)
    out: list[Command] = []
    for event in events:
        out.extend(machine.feed(event))
    if now is not None:
        out.extend(machine.poll(now))
    return out
