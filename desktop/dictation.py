"""The dictation core: one command queue, one explicit stage, typing as its own stage.

Pure: no Qt, no asyncio, no threads, no clock of its own. Everything that happens —
a key, the tray, an utterance starting or ending on the audio thread, an outcome from
the client, a typing job finishing, a clock tick — is a *command* handed to
:meth:`DictationCore.post`. Commands are applied one at a time, in the order they were
posted; a command posted while another is being applied (from a notice handler, or from
a nested event loop) waits in the queue, so the core is never re-entered.

Typing is a stage with its own queue. Finals are put in utterance order (a final waits
for the outcome of every earlier utterance, at most ``order_wait_s``; an earlier final
that comes after a later text was handed to the typist is not typed, only recorded,
so text never lands out of order) and handed to a
:class:`TypingExecutor` **one at a time**: the next job starts only once the previous
one's :class:`TypingDone` has come back as a command. A job starts only while the user
holds no modifier key (a cheap probe, read before each start; a held one is re-read on
ticks, at most ``modifier_wait_s``, after which the job goes with the keys named and the
typist leaves the text on the clipboard), so nothing blocks while the user lets go.
An executor that runs a nested event loop while typing (the Qt clipboard waits for the
paste that way) therefore cannot start a second job inside the first, and history is
written in utterance order, each entry saying truthfully whether its text was typed.

What the core does not own: audio (the audio thread hands it straight to the client;
only lifecycle events — utterance started, ended, dropped — come here), the connection,
and the UI. It drives them through small ports (:class:`Microphone`,
:class:`TypingExecutor`) and reports through :class:`Notice`\\ s; the Qt adapter
(:mod:`desktop.coordinator`) turns notices into signals and Qt timers into ticks.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from desktop.audio.segmenter import (
    EndReason,
    Mode,
    UtteranceDropped,
    UtteranceEnded,
    UtteranceStarted,
)
from desktop.output.modifiers import DEFAULT_WAIT_S
from desktop.output.typist import TypingResult
from protocol.client_events import FinalText, UtteranceCancelled, UtteranceFailed
from protocol.client_timeline import UtteranceTimeline

log = logging.getLogger(__name__)

__all__ = [
    "WITHHELD_TEXT",
    "AudioFailed",
    "Command",
    "DictationCore",
    "DictationFacts",
    "FinalRecorded",
    "FinalTyper",
    "HistoryEntry",
    "Microphone",
    "Notice",
    "Problem",
    "RecordingChanged",
    "Retype",
    "SessionLockChanged",
    "SettingsChanged",
    "Shutdown",
    "Stage",
    "StageChanged",
    "Start",
    "SwitchHandsFree",
    "Talk",
    "TalkKind",
    "Tick",
    "TypingDone",
    "TypingExecutor",
    "TypingJob",
    "TypingOutcome",
    "TypingStatus",
    "UtteranceOutcome",
    "Withheld",
    "type_text",
]

#: History keeps this many entries.
HISTORY_LIMIT = 200


class Stage(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    SPEAKING = "speaking"
    FINALIZING = "finalizing"
    TYPING = "typing"


@dataclass(frozen=True)
class DictationFacts:
    """What the stage is derived from. Utterances overlap (the next sentence starts while
    the last one is decoding), so the stage is a function of these facts rather than a
    separate variable that could get out of step with them."""

    active: bool = False  # hands-free on, or the talk key held / latched
    speaking: bool = False  # an utterance is open
    outstanding: frozenset[int] = field(default_factory=frozenset)  # ended, no outcome yet
    typing: bool = False  # a typing job is with the executor

    @property
    def recording(self) -> bool:
        """The microphone is feeding (or may feed) the server: dictation is on, or an
        utterance is still open (a released key's tail is being recorded)."""
        return self.active or self.speaking

    @property
    def stage(self) -> Stage:
        if self.typing:
            return Stage.TYPING
        if self.speaking:
            return Stage.SPEAKING
        if self.outstanding:
            return Stage.FINALIZING
        if self.active:
            return Stage.LISTENING
        return Stage.IDLE


@dataclass(frozen=True)
class HistoryEntry:
    when: float  # wall clock (time.time())
    text: str
    latency_ms: float | None  # end of speech → text typed
    typed: bool
    note: str = ""  # why it was not typed, or what the typist changed


# ---------------------------------------------------------------- typing


class TypingStatus(enum.Enum):
    TYPED = "typed"
    SKIPPED = "skipped"  # nothing typed, by design (our own window has focus, empty text)
    DEFERRED = "deferred"  # the typist queued it behind a typing still running
    FAILED = "failed"


@dataclass(frozen=True)
class TypingOutcome:
    status: TypingStatus
    detail: str = ""  # failed: the error; skipped/deferred: why
    notice: str | None = None  # what the typist changed in the text, for the user


class Withheld(enum.Enum):
    """Why a final goes to History instead of into the window that has focus."""

    STALE = "stale"  # the client's verdict: too long after the speech (a long reconnect)
    OUT_OF_ORDER = "out_of_order"  # what was said after it was handed to the typist first
    LOCKED = "locked"  # the session is locked: typing would reach no one


#: What History notes and what the user is told, for each reason.
WITHHELD_TEXT: dict[Withheld, tuple[str, str]] = {
    Withheld.STALE: (
        "not typed: it came too late to type into the window that has focus now",
        "A late text was not typed; it is in History.",
    ),
    Withheld.OUT_OF_ORDER: (
        "not typed: it came after what you said next had been typed; it would have "
        "landed out of order",
        "A late text was not typed (what you said after it was typed first); it is in History.",
    ),
    Withheld.LOCKED: (
        "not typed: the session was locked",
        "The session is locked: the text was not typed; it is in History.",
    ),
}


@dataclass(frozen=True)
class TypingJob:
    """One text to type. ``utterance_id`` is None for a history "type again".
    ``withheld``: not to be typed; it is recorded when its turn comes, so history keeps
    utterance order."""

    seq: int
    text: str
    utterance_id: int | None = None
    speech_ended_at: float | None = None  # core clock, for the latency
    timeline: UtteranceTimeline | None = None
    withheld: Withheld | None = None
    #: the modifier keys still held when the core stopped waiting: not to be typed (it
    #: would make shortcuts); the typist leaves the text on the clipboard
    modifiers_held: tuple[str, ...] = ()


class FinalTyper(Protocol):
    """Types final text into the focused window (desktop/output). ``modifiers_held``
    (given only when not empty): these keys stayed held, so do not type; leave the text
    where the user can get it (the typist's clipboard fallback)."""

    def type_final(self, text: str, *, modifiers_held: tuple[str, ...] = ()) -> object: ...


def type_text(typer: FinalTyper, text: str, modifiers_held: tuple[str, ...] = ()) -> TypingOutcome:
    """Type ``text`` with ``typer``; every way it can go wrong becomes a FAILED outcome.

    The boundary where the typist's exceptions stop: the core only ever sees results.
    A typer that returns None (a plain callable, a test double) typed the text."""
    try:
        if modifiers_held:
            result = typer.type_final(text, modifiers_held=modifiers_held)
        else:
            result = typer.type_final(text)
    except Exception as exc:
        log.exception("typing failed")
        return TypingOutcome(TypingStatus.FAILED, f"{type(exc).__name__}: {exc}")
    if not isinstance(result, TypingResult):
        return TypingOutcome(TypingStatus.TYPED)
    notice = result.notice
    if result.error:
        return TypingOutcome(TypingStatus.FAILED, result.error, notice)
    if result.deferred:
        return TypingOutcome(TypingStatus.DEFERRED, "queued behind another typing", notice)
    if result.skipped_own_window:
        return TypingOutcome(TypingStatus.SKIPPED, "a tingxie window had focus", notice)
    if not result.ok:
        return TypingOutcome(TypingStatus.SKIPPED, "nothing to type", notice)
    return TypingOutcome(TypingStatus.TYPED, notice=notice)


# ---------------------------------------------------------------- ports


class Microphone(Protocol):
    """The audio pipeline as the core sees it (commands are queued to the audio thread)."""

    @property
    def is_open(self) -> bool: ...

    def open(self, mode: Mode) -> str | None:
        """Open the microphone in ``mode`` (kept if open); None, or why it cannot."""
        ...

    def close(self) -> None: ...

    def set_mode(self, mode: Mode) -> None: ...

    def press(self) -> None: ...

    def release(self) -> None: ...

    def tap(self) -> None:
        """A press too short to be a hold: kept if the VAD heard speech in it or in the
        release tail after it."""
        ...

    def cancel(self) -> None: ...


#: Reads which modifier keys are held now, without waiting (() when none, or unknown).
ModifierProbe = Callable[[], tuple[str, ...]]

#: How often a held modifier is read again while a typing job waits for its release.
MODIFIER_POLL_S = 0.02


class TypingExecutor(Protocol):
    """Runs a typing job *later* (never inside ``submit``) and posts its
    :class:`TypingDone` to the core."""

    def submit(self, job: TypingJob) -> None: ...


# ---------------------------------------------------------------- commands


class TalkKind(enum.Enum):
    PRESSED = "pressed"
    RELEASED = "released"
    TAPPED = "tapped"  # a short press: kept only if it held speech
    CANCELLED = "cancelled"  # the key was part of a shortcut: drop what it recorded
    TOGGLED = "toggled"  # the toggle key: press when idle, release when active


@dataclass(frozen=True)
class Talk:
    kind: TalkKind


@dataclass(frozen=True)
class SwitchHandsFree:
    """The tray click: hands-free dictation on/off, whatever the configured mode."""


@dataclass(frozen=True)
class Start:
    """The app started: open the microphone now if it is kept warm for the talk key."""


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class SettingsChanged:
    mode: Mode
    audio_changed: bool  # device or VAD settings changed: reopen the microphone
    warm_microphone: bool = True


@dataclass(frozen=True)
class AudioFailed:
    message: str


#: How the client's ledger ends an utterance (protocol.client_events): exactly one each.
UtteranceOutcome = FinalText | UtteranceFailed | UtteranceCancelled


@dataclass(frozen=True)
class TypingDone:
    job: TypingJob
    outcome: TypingOutcome


@dataclass(frozen=True)
class Retype:
    """History: type an earlier text again (through the typing queue like any other)."""

    text: str


@dataclass(frozen=True)
class SessionLockChanged:
    """The user's session was locked (``locked``) or unlocked (Windows: the shell thread's
    ``WM_WTSSESSION_CHANGE``). Locking stops hands-free and toggled dictation as if the
    user switched it off (a push-to-talk hold is cancelled by the hotkey listener, which
    hears the lock too); while locked no final is typed: it goes to history with a notice."""

    locked: bool


@dataclass(frozen=True)
class Tick:
    """A clock tick: finals waiting for an earlier utterance may have waited long enough."""


Lifecycle = UtteranceStarted | UtteranceEnded | UtteranceDropped

Command = (
    Talk
    | SwitchHandsFree
    | Start
    | Shutdown
    | SettingsChanged
    | AudioFailed
    | UtteranceOutcome
    | TypingDone
    | Retype
    | Tick
    | SessionLockChanged
    | Lifecycle
)


# ---------------------------------------------------------------- notices


@dataclass(frozen=True)
class StageChanged:
    stage: Stage


@dataclass(frozen=True)
class RecordingChanged:
    recording: bool


@dataclass(frozen=True)
class FinalRecorded:
    entry: HistoryEntry


@dataclass(frozen=True)
class Problem:
    text: str  # something the user should be told


Notice = StageChanged | RecordingChanged | FinalRecorded | Problem


@dataclass
class _Waiting:
    """A final waiting for its turn (an earlier utterance has no outcome yet)."""

    final: FinalText
    arrived_at: float


# ---------------------------------------------------------------- the core


class DictationCore:
    """Not thread-safe: post from one thread (the Qt adapter posts from the Qt thread)."""

    def __init__(
        self,
        microphone: Microphone,
        executor: TypingExecutor,
        notify: Callable[[Notice], None],
        *,
        mode: Mode,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        warm_microphone: bool = True,
        order_wait_s: float = 10.0,
        held_modifiers: ModifierProbe | None = None,
        modifier_wait_s: float = DEFAULT_WAIT_S,
    ) -> None:
        """``warm_microphone``: keep the microphone open between talk-key presses (audio
        from just before a press is kept); off, it opens at the press and closes once
        the utterance has ended. ``held_modifiers``: the non-blocking probe read before
        each typing job starts (None: jobs start at once and the typist waits itself)."""
        self._mic = microphone
        self._executor = executor
        self._notify = notify
        self._clock = clock
        self._wall_clock = wall_clock
        self.order_wait_s = order_wait_s
        self.configured_mode = mode
        self.warm_microphone = warm_microphone
        self.facts = DictationFacts()
        self.history: list[HistoryEntry] = []
        self._hands_free = False  # switched on from the tray
        self._latched = False  # the talk key is on because the toggle key latched it
        self._locked = False  # the session is locked: nothing is typed
        self._commands: deque[Command] = deque()
        self._applying = False
        self._speech_ended_at: dict[int, float] = {}
        self._waiting: dict[int, _Waiting] = {}  # finals waiting for earlier outcomes
        # Utterances with no outcome when a later one's text went to the typist: their
        # text, should it come, would land after it, so it is withheld; nothing waits
        # for them any more. Each leaves the set with its outcome.
        self._overtaken: set[int] = set()
        self._typing_queue: deque[TypingJob] = deque()
        self._typing_now: TypingJob | None = None
        self._next_seq = 1
        self._held_modifiers = held_modifiers
        self.modifier_wait_s = modifier_wait_s
        self._held_since: float | None = None  # the next job waits for modifiers since
        self._recheck_at: float | None = None  # when to read the modifiers again

    # ---------------------------------------------------------------- the queue

    def post(self, command: Command) -> None:
        """Queue ``command`` and, unless a command is being applied right now, apply the
        queue. Safe to call from a notice handler or a nested event loop."""
        self._commands.append(command)
        if self._applying:
            return
        self._applying = True
        try:
            while self._commands:
                before = self.facts
                self._apply(self._commands.popleft())
                self._announce(before)
        finally:
            self._applying = False

    @property
    def mode(self) -> Mode:
        """The segmenter mode now: hands-free while switched on from the tray."""
        return Mode.HANDS_FREE if self._hands_free else self.configured_mode

    @property
    def locked(self) -> bool:
        """The session is locked (nothing is typed)."""
        return self._locked

    @property
    def typing_queue(self) -> tuple[TypingJob, ...]:
        """Jobs waiting for the executor (the running one is not among them)."""
        return tuple(self._typing_queue)

    @property
    def typing_now(self) -> TypingJob | None:
        return self._typing_now

    def next_deadline(self) -> float | None:
        """When a :class:`Tick` is next needed (core clock), or None."""
        deadlines = [self._gives_up_at(w) for w in self._waiting.values()]
        if self._recheck_at is not None:
            deadlines.append(self._recheck_at)
        return min(deadlines, default=None)

    def _gives_up_at(self, waiting: _Waiting) -> float:
        """When a final stops waiting for earlier outcomes (one expression for the
        deadline and the check, so a tick at the deadline always releases it)."""
        return waiting.arrived_at + self.order_wait_s

    def _apply(self, command: Command) -> None:
        if isinstance(command, Talk):
            self._on_talk(command.kind)
        elif isinstance(command, SwitchHandsFree):
            self._switch_hands_free()
        elif isinstance(command, UtteranceStarted):
            self._set(speaking=True)
        elif isinstance(command, UtteranceEnded):
            self._on_ended(command)
            self._close_if_cold()
        elif isinstance(command, UtteranceDropped):
            self._set(speaking=False)
            self._close_if_cold()
        elif isinstance(command, FinalText | UtteranceFailed | UtteranceCancelled):
            self._on_outcome(command)
        elif isinstance(command, TypingDone):
            self._on_typing_done(command)
        elif isinstance(command, Retype):
            self._enqueue_typing(TypingJob(self._take_seq(), command.text))
        elif isinstance(command, Tick):
            self._release_in_order()
            self._pump_typing()  # a job waiting for modifiers: read them again
        elif isinstance(command, SessionLockChanged):
            self._on_session_lock(command.locked)
        elif isinstance(command, AudioFailed):
            self._on_audio_failed(command.message)
        elif isinstance(command, SettingsChanged):
            self._on_settings(command)
        elif isinstance(command, Start):
            if self._wants_microphone():
                self._open_microphone()  # warm: pre-roll from before the key press
        elif isinstance(command, Shutdown):
            self._mic.close()
            self._set(active=False, speaking=False)

    # ---------------------------------------------------------------- facts → notices

    def _set(
        self,
        *,
        active: bool | None = None,
        speaking: bool | None = None,
        outstanding: frozenset[int] | None = None,
        typing: bool | None = None,
    ) -> None:
        f = self.facts
        f = f if active is None else replace(f, active=active)
        f = f if speaking is None else replace(f, speaking=speaking)
        f = f if outstanding is None else replace(f, outstanding=outstanding)
        f = f if typing is None else replace(f, typing=typing)
        self.facts = f

    def _announce(self, before: DictationFacts) -> None:
        """Notices for what one command changed (steps within a command are not seen:
        a final that ends FINALIZING and starts TYPING never shows IDLE between)."""
        after = self.facts
        if after.recording != before.recording:
            self._notify(RecordingChanged(after.recording))
        if after.stage is not before.stage:
            self._notify(StageChanged(after.stage))

    def _problem(self, text: str) -> None:
        self._notify(Problem(text))

    # ---------------------------------------------------------------- microphone

    def _wants_microphone(self) -> bool:
        """Open even with no utterance: hands-free on, or warm for the talk key."""
        if self.mode is Mode.HANDS_FREE:
            return self._hands_free
        return self.warm_microphone

    def _close_if_cold(self) -> None:
        """A cold microphone closes once the last utterance it recorded has ended."""
        idle = not (self.facts.active or self.facts.speaking)
        if idle and self._mic.is_open and not self._wants_microphone():
            self._mic.close()

    def _open_microphone(self) -> bool:
        if self._mic.is_open:
            return True
        error = self._mic.open(self.mode)
        if error is not None:
            self._problem(f"Cannot open the microphone: {error}")
            return False
        return True

    def _switch_hands_free(self) -> None:
        if self._hands_free:
            self._hands_free = False
            if not self._wants_microphone() or not self._mic.is_open:
                self._mic.close()
            else:
                self._mic.set_mode(self.configured_mode)  # back to the warm talk-key mic
            self._set(active=False, speaking=False)
            return
        self._hands_free = True
        if self._mic.is_open:
            self._mic.set_mode(Mode.HANDS_FREE)
        elif not self._open_microphone():
            self._hands_free = False
            return
        self._set(active=True)

    def _on_talk(self, kind: TalkKind) -> None:
        if self.mode is Mode.HANDS_FREE:
            return
        toggled = kind is TalkKind.TOGGLED
        if toggled:
            kind = TalkKind.RELEASED if self.facts.active else TalkKind.PRESSED
        if kind is TalkKind.PRESSED:
            if self._open_microphone():
                self._mic.press()
                self._set(active=True)
                self._latched = toggled
            return
        self._latched = False
        if not self._mic.is_open:
            return
        if kind is TalkKind.RELEASED:
            self._mic.release()
        elif kind is TalkKind.TAPPED:
            self._mic.tap()
        else:
            self._mic.cancel()
        self._set(active=False)

    def _on_session_lock(self, locked: bool) -> None:
        """Locked: hands-free or toggled dictation stops as a tray click or the toggle key
        would stop it (the utterance in progress ends normally; its final goes to history,
        see :meth:`_pump_typing`). A hold is left to the hotkey listener, which cancels
        it. Unlocked: typing resumes; dictation stays off until the user starts it."""
        self._locked = locked
        self._pump_typing()  # a job waiting for modifiers: now to history
        if not locked:
            log.info("session unlocked")
            return
        if self._hands_free:
            log.info("session locked: hands-free dictation off")
            self._switch_hands_free()
        elif self._latched and self.facts.active:
            log.info("session locked: toggled dictation off")
            self._on_talk(TalkKind.RELEASED)

    def _on_audio_failed(self, message: str) -> None:
        self._problem(f"Audio stopped: {message}")
        self._mic.close()
        self._set(active=False, speaking=False)

    def _on_settings(self, change: SettingsChanged) -> None:
        self.configured_mode = change.mode
        self.warm_microphone = change.warm_microphone
        if change.audio_changed and self._mic.is_open:
            self._mic.close()  # reopened below with the new device and VAD settings
            self._set(speaking=False)
        if self._wants_microphone():
            if not self._open_microphone():
                self._hands_free = False
                self._set(active=False)
        else:
            self._close_if_cold()

    # ---------------------------------------------------------------- utterances

    def _on_ended(self, event: UtteranceEnded) -> None:
        outstanding = self.facts.outstanding
        if event.reason is not EndReason.CANCELLED:
            when = event.detected_at if event.detected_at is not None else self._clock()
            self._speech_ended_at[event.utterance_id] = when
            outstanding = outstanding | {event.utterance_id}
        self._set(speaking=False, outstanding=outstanding)

    def _on_outcome(self, outcome: UtteranceOutcome) -> None:
        uid = outcome.utterance_id
        self._set(outstanding=self.facts.outstanding - {uid})
        if isinstance(outcome, FinalText):
            self._waiting[uid] = _Waiting(outcome, self._clock())
        else:
            self._speech_ended_at.pop(uid, None)
            self._overtaken.discard(uid)
            if isinstance(outcome, UtteranceFailed):
                log.warning("utterance %d failed (%s)", uid, outcome.reason.value)
                self._problem(f"Recognition failed: {outcome.message}")
            else:
                log.info("utterance %d cancelled", uid)
        self._release_in_order()

    def _release_in_order(self) -> None:
        """Move waiting finals whose earlier utterances all have outcomes (or that have
        waited ``order_wait_s``) to the typing queue, lowest utterance id first."""
        now = self._clock()
        # A final that has waited long enough goes, and every waiting final before it
        # with it (in order): no final waits longer than order_wait_s.
        expired = [u for u, w in self._waiting.items() if now >= self._gives_up_at(w)]
        release_up_to = max(expired, default=None)
        for uid in sorted(self._waiting):
            waiting = self._waiting[uid]
            earlier = self._earlier_to_wait_for(uid)
            if earlier and (release_up_to is None or uid > release_up_to):
                break
            if earlier:
                log.warning(
                    "utterance %d released before %s: no outcome for them after %.0f s",
                    uid,
                    earlier,
                    self.order_wait_s,
                )
            del self._waiting[uid]
            self._accept_final(waiting.final)

    def _earlier_to_wait_for(self, uid: int) -> list[int]:
        """Earlier utterances without an outcome whose text could still be typed."""
        return sorted(o for o in self.facts.outstanding if o < uid and o not in self._overtaken)

    def _accept_final(self, final: FinalText) -> None:
        uid = final.utterance_id
        ended = self._speech_ended_at.pop(uid, None)
        overtaken = uid in self._overtaken
        self._overtaken.discard(uid)
        text = final.text.strip()
        if not text:
            log.info("utterance %d: empty final", uid)
            return
        withheld = None
        if final.stale:
            withheld = Withheld.STALE
        elif overtaken:
            log.warning("utterance %d: its final came after later text was typed", uid)
            withheld = Withheld.OUT_OF_ORDER
        self._enqueue_typing(
            TypingJob(self._take_seq(), text, uid, ended, final.timeline, withheld=withheld)
        )

    # ---------------------------------------------------------------- typing stage

    def _take_seq(self) -> int:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        return seq

    def _enqueue_typing(self, job: TypingJob) -> None:
        """Queue ``job`` in utterance order: a final released late (its earlier
        utterance's outcome came after a later final had been queued) goes before the
        later finals that have not started yet."""
        at = len(self._typing_queue)
        if job.utterance_id is not None:
            at = next(
                (
                    i
                    for i, queued in enumerate(self._typing_queue)
                    if queued.utterance_id is not None and queued.utterance_id > job.utterance_id
                ),
                at,
            )
        self._typing_queue.insert(at, job)
        self._pump_typing()

    def _withheld(self, job: TypingJob) -> Withheld | None:
        if job.withheld is not None:
            return job.withheld
        if self._locked and job.utterance_id is not None:
            return Withheld.LOCKED  # typing into a locked session reaches no one
        return None

    def _pump_typing(self) -> None:
        """Start the next job unless one is running; withheld ones are recorded on the
        way. A job to type waits (queued, re-read on ticks) while a modifier is held."""
        while self._typing_now is None and self._typing_queue:
            job = self._typing_queue[0]
            withheld = self._withheld(job)
            if withheld is None:
                held = self._modifiers_to_wait_for()
                if held is None:
                    break  # still held: a tick reads them again
                job = replace(job, modifiers_held=held)
            self._typing_queue.popleft()
            if withheld is not None:
                note, notice = WITHHELD_TEXT[withheld]
                self._record(HistoryEntry(self._wall_clock(), job.text, None, False, note))
                self._problem(notice)
                continue
            if job.utterance_id is not None:
                # from now on this text is in the window: an earlier one typed after it
                # would land out of order
                self._overtaken.update(self._earlier_to_wait_for(job.utterance_id))
            self._typing_now = job
            self._executor.submit(job)
        if self._typing_now is not None or not self._typing_queue:
            self._held_since = self._recheck_at = None  # no job is waiting for modifiers
        self._set(typing=self._typing_now is not None or self._held_since is not None)

    def _modifiers_to_wait_for(self) -> tuple[str, ...] | None:
        """Before the next job starts: () when no modifier is held (type), None while the
        held ones may still be released (wait; a tick is due at ``_recheck_at``), or the
        keys still held once ``modifier_wait_s`` has passed (give up)."""
        held = self._read_modifiers()
        now = self._clock()
        if not held:
            if self._held_since is not None:
                log.debug("modifiers released after %.3f s", now - self._held_since)
            self._held_since = self._recheck_at = None
            return ()
        if self._held_since is None:
            self._held_since = now
        gives_up_at = self._held_since + self.modifier_wait_s
        if now >= gives_up_at:
            log.warning("modifier keys held for %.1f s: %s", self.modifier_wait_s, held)
            self._held_since = self._recheck_at = None
            return held
        self._recheck_at = min(now + MODIFIER_POLL_S, gives_up_at)
        return None

    def _read_modifiers(self) -> tuple[str, ...]:
        if self._held_modifiers is None:
            return ()
        try:
            return self._held_modifiers()
        except Exception:  # an unreadable keyboard must not stop typing
            log.exception("cannot read the modifier keys")
            return ()

    def _on_typing_done(self, done: TypingDone) -> None:
        job, outcome = done.job, done.outcome
        if self._typing_now is None or job.seq != self._typing_now.seq:
            log.error("typing result for job %d, which is not the one running", job.seq)
            return
        self._typing_now = None
        now = self._clock()
        typed = outcome.status is TypingStatus.TYPED
        if outcome.status is TypingStatus.FAILED:
            self._problem(f"Could not type the text: {outcome.detail}")
        if outcome.notice:
            self._problem(outcome.notice)
        if job.utterance_id is not None:
            if job.timeline is not None:
                job.timeline.typed = now if typed else None
            latency = None
            if typed and job.speech_ended_at is not None:
                latency = (now - job.speech_ended_at) * 1000
            note = "" if typed else f"not typed: {outcome.detail or outcome.status.value}"
            if typed and outcome.notice:
                note = outcome.notice
            self._record(HistoryEntry(self._wall_clock(), job.text, latency, typed, note))
        self._pump_typing()

    def _record(self, entry: HistoryEntry) -> None:
        self.history.append(entry)
        del self.history[:-HISTORY_LIMIT]
        self._notify(FinalRecorded(entry))
