"""Utterance segmentation: a pure state machine (no threads, no clocks, no I/O).

Feed it consecutive int16 chunks (normally 512 samples = 32 ms at 16 kHz) with a speech
probability per chunk; it returns events:

    UtteranceStarted → AudioChunk* → UtteranceEnded        (an utterance that is sent)
    UtteranceDropped                                        (a candidate never sent)

Contract for consumers:

* ``UtteranceStarted`` is emitted only once speech is confirmed, so an utterance that
  would be dropped never reaches the server: no ``cancel`` is needed for it. The audio
  from before confirmation (pre-roll included) follows right after ``UtteranceStarted``.
* The ``AudioChunk``\\ s of one utterance are contiguous: chunk ``k+1`` starts at the
  sample where chunk ``k`` ended, from ``UtteranceStarted.start_sample`` up to
  ``UtteranceEnded.end_sample``. Samples are bit-exact copies of the input.
* No input sample is ever sent in two utterances: a new utterance's pre-roll is clamped
  to the end of the previous one.
* ``UtteranceDropped`` is never preceded by ``UtteranceStarted`` for the same id.

A push-to-talk key that goes up ends the utterance after a release tail, whether the press
was a hold (``release()``) or a tap (``tap()``, kept only if the VAD heard speech). A tap
is judged when its tail is complete, not at the key-up: the key reaches the segmenter
before audio the device captured during the press has been fed.

Sample positions are absolute indices into the stream fed so far (the first fed sample is
0). Clock times are not the segmenter's business: the pipeline stamps them.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from desktop.audio.vad import SpeechDetector
from desktop.hotkey.debounce import CommandKind, HoldOutcome, hold_outcome
from protocol.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_RATE",
    "AudioChunk",
    "DropReason",
    "EndReason",
    "Event",
    "Mode",
    "Segmenter",
    "SegmenterConfig",
    "SegmenterState",
    "UtteranceDropped",
    "UtteranceEnded",
    "UtteranceStarted",
]

Int16Array = npt.NDArray[np.int16]


class Mode(enum.Enum):
    """Who opens and closes utterances."""

    HANDS_FREE = "hands_free"  # the VAD opens and closes
    PUSH_TO_TALK = "push_to_talk"  # press() opens, release() or tap() closes (after a tail)
    TOGGLE = "toggle"  # toggle() alternates press and release; a latched push-to-talk


class SegmenterState(enum.Enum):
    IDLE = "idle"  # no candidate utterance
    PENDING = "pending"  # candidate buffered, speech not confirmed yet: nothing sent
    ACTIVE = "active"  # UtteranceStarted emitted, audio streaming


class EndReason(enum.Enum):
    SILENCE = "silence"  # hands-free: min_silence after the last speech
    RELEASED = "released"  # manual: key released and the release tail recorded
    MAX_LENGTH = "max_length"  # split; the speech goes on in the next utterance
    STREAM_END = "stream_end"  # flush(): the source ended
    MODE_CHANGED = "mode_changed"
    CANCELLED = "cancelled"  # cancel(): the consumer should cancel, not finalise


class DropReason(enum.Enum):
    NO_SPEECH = "no_speech"  # not a single speech chunk
    TOO_SHORT = "too_short"  # some speech, less than the minimum
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class UtteranceStarted:
    utterance_id: int
    start_sample: int  # first sample sent (pre-roll included)
    trigger_sample: int  # first speech chunk (hands-free) or key press (manual modes)
    mode: Mode
    detected_at: float | None = None  # monotonic clock, stamped by the pipeline

    @property
    def pre_roll_samples(self) -> int:
        return self.trigger_sample - self.start_sample


@dataclass(frozen=True, slots=True)
class AudioChunk:
    utterance_id: int
    start_sample: int
    pcm: bytes = field(repr=False)  # s16le mono 16 kHz, the protocol's wire format

    @property
    def num_samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.num_samples


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    utterance_id: int
    reason: EndReason
    start_sample: int
    end_sample: int  # one past the last sample sent
    speech_end_sample: int  # end of the last chunk at or above the threshold
    detected_at_sample: int  # stream position when the end was decided
    detected_at: float | None = None  # monotonic clock, stamped by the pipeline

    @property
    def duration_s(self) -> float:
        return (self.end_sample - self.start_sample) / SAMPLE_RATE

    @property
    def decision_delay_s(self) -> float:
        """Audio time from the end of speech to the end decision (min silence, tail...)."""
        return (self.detected_at_sample - self.speech_end_sample) / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class UtteranceDropped:
    utterance_id: int
    reason: DropReason
    start_sample: int  # the range that was buffered and thrown away
    end_sample: int
    speech_samples: int


Event = UtteranceStarted | AudioChunk | UtteranceEnded | UtteranceDropped


def _ms(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000)


@dataclass(frozen=True)
class SegmenterConfig:
    """Durations in milliseconds; probabilities in [0, 1]."""

    #: A chunk at or above this probability is speech (starts/continues an utterance).
    threshold: float = 0.5
    #: A chunk below this is silence; in between keeps the current state (hysteresis, as
    #: in silero's VADIterator). None means ``threshold - 0.15``.
    neg_threshold: float | None = None
    #: Audio kept from before the trigger (first speech chunk or key press).
    pre_roll_ms: float = 480
    #: Hands-free: silence that ends an utterance.
    min_silence_ms: float = 560
    #: Hands-free: speech needed before an utterance is started (shorter blips are dropped).
    min_speech_ms: float = 192
    #: Hands-free: audio sent after the speech ends (the rest of the silence is not sent).
    tail_ms: float = 256
    #: Manual modes: speech needed between press and release+tail (one chunk by default).
    manual_min_speech_ms: float = 32
    #: Manual modes: audio recorded after the key is released, so the last word is kept.
    release_tail_ms: float = 320
    #: After this length, an utterance is split at the first pause of ``split_silence_ms``.
    soft_max_ms: float = 20_000
    split_silence_ms: float = 96
    #: Hard limit: split right there even mid-speech.
    max_utterance_ms: float = 30_000
    #: Largest AudioChunk (a burst of buffered audio is sent in pieces of at most this).
    max_chunk_ms: float = 200

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if self.neg_threshold is not None and not 0.0 <= self.neg_threshold <= self.threshold:
            raise ValueError("neg_threshold must be in [0, threshold]")
        for name in (
            "pre_roll_ms",
            "min_speech_ms",
            "tail_ms",
            "release_tail_ms",
            "manual_min_speech_ms",
            "split_silence_ms",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.min_silence_ms <= 0:
            raise ValueError("min_silence_ms must be > 0")
        if self.max_chunk_ms <= 0:
            raise ValueError("max_chunk_ms must be > 0")
        if not 0 < self.soft_max_ms <= self.max_utterance_ms:
            raise ValueError("need 0 < soft_max_ms <= max_utterance_ms")

    @property
    def effective_neg_threshold(self) -> float:
        if self.neg_threshold is not None:
            return self.neg_threshold
        return max(self.threshold - 0.15, 0.01)


class _History:
    """Recent input chunks, addressable by absolute sample index."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[int, Int16Array]] = deque()
        self.end = 0

    @property
    def start(self) -> int:
        return self._chunks[0][0] if self._chunks else self.end

    def append(self, start: int, chunk: Int16Array) -> None:
        self._chunks.append((start, chunk))
        self.end = start + len(chunk)

    def discard_before(self, index: int) -> None:
        # Whole chunks only: a partly needed chunk stays.
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= index:
            self._chunks.popleft()

    def slice(self, start: int, end: int) -> Int16Array:
        if start < self.start or end > self.end:
            raise AssertionError(f"samples {start}:{end} not in history {self.start}:{self.end}")
        parts = [
            c[max(start - s, 0) : end - s]
            for s, c in self._chunks
            if s < end and s + len(c) > start
        ]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass
class _Candidate:
    utterance_id: int
    start: int  # first sample to send (pre-roll included)
    trigger: int
    manual: bool
    confirmed: bool = False
    emitted: int = 0  # next sample to send, once confirmed
    speech_samples: int = 0
    speech_end: int = 0  # end of the last chunk >= threshold
    silence_since: int | None = None  # start of the current run of silence
    released_at: int | None = None
    released_by: CommandKind | None = None  # RELEASE or TAP: decides the fate (hold_outcome)
    continuation: bool = False  # follows a split: one speech chunk confirms it


class Segmenter:
    """Turns (chunk, speech probability) pairs into utterance events. Not thread-safe:
    drive it from one thread (the pipeline does; key presses are queued to that thread).
    """

    def __init__(
        self,
        config: SegmenterConfig | None = None,
        mode: Mode = Mode.HANDS_FREE,
        detector: SpeechDetector | None = None,
        first_id: int = 1,
    ) -> None:
        self.config = config or SegmenterConfig()
        self._mode = mode
        self._detector = detector
        self._next_id = first_id
        self._hist = _History()
        self._utt: _Candidate | None = None
        self._floor = 0  # nothing before this is sent again
        self._pressed = False
        c = self.config
        self._thr = c.threshold
        self._neg = c.effective_neg_threshold
        self._pre_roll = _ms(c.pre_roll_ms)
        self._min_silence = _ms(c.min_silence_ms)
        self._min_speech = _ms(c.min_speech_ms)
        self._tail = _ms(c.tail_ms)
        self._manual_min_speech = max(_ms(c.manual_min_speech_ms), 1)
        self._release_tail = _ms(c.release_tail_ms)
        self._soft_max = _ms(c.soft_max_ms)
        self._split_silence = _ms(c.split_silence_ms)
        self._hard_max = _ms(c.max_utterance_ms)
        self._max_chunk = max(_ms(c.max_chunk_ms), 1)

    # ---- state -------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def position(self) -> int:
        """Samples fed so far."""
        return self._hist.end

    @property
    def state(self) -> SegmenterState:
        if self._utt is None:
            return SegmenterState.IDLE
        return SegmenterState.ACTIVE if self._utt.confirmed else SegmenterState.PENDING

    @property
    def pressed(self) -> bool:
        return self._pressed

    @property
    def current_utterance_id(self) -> int | None:
        return self._utt.utterance_id if self._utt else None

    # ---- input -------------------------------------------------------------------------

    def feed(self, chunk: Int16Array, probability: float | None = None) -> list[Event]:
        """Consume the next chunk of the stream. Without ``probability`` the detector given
        to the constructor is asked."""
        if chunk.ndim != 1 or len(chunk) == 0:
            raise ValueError("chunk must be a non-empty 1-D int16 array")
        if probability is None:
            if self._detector is None:
                raise ValueError("no probability given and no detector configured")
            probability = self._detector.speech_probability(chunk)
        # Copy: callers may reuse their buffer, and we keep chunks for pre-roll.
        data: Int16Array = np.array(chunk, dtype=np.int16, copy=True)
        start = self._hist.end
        end = start + len(data)
        self._hist.append(start, data)
        events: list[Event] = []

        is_speech = probability >= self._thr
        if self._utt is None and self._mode is Mode.HANDS_FREE and is_speech:
            self._utt = self._new_candidate(trigger=start, manual=False)

        utt = self._utt
        if utt is not None:
            if is_speech:
                utt.speech_samples += len(data)
                utt.speech_end = end
                utt.silence_since = None
            elif probability < self._neg and utt.silence_since is None:
                utt.silence_since = start
            self._advance(utt, events)

        self._trim()
        return events

    def press(self) -> list[Event]:
        """Key down (manual modes): open a candidate whose pre-roll reaches back before now.
        Ignored in hands-free mode or when already pressed."""
        if self._mode is Mode.HANDS_FREE or self._pressed:
            return []
        events: list[Event] = []
        self._pressed = True
        if self._utt is not None:
            # Pressed again during the previous release tail: close that one here.
            self._finish(self._utt, EndReason.RELEASED, self.position, events)
        self._utt = self._new_candidate(trigger=self.position, manual=True)
        return events

    def release(self) -> list[Event]:
        """Key up (manual modes): the utterance ends after ``release_tail_ms`` more audio."""
        return self._key_up(CommandKind.RELEASE)

    def tap(self) -> list[Event]:
        """Key up after a press too short to be a hold: recorded like ``release()``, tail
        included, then judged by :func:`hold_outcome` once the tail is complete (or the
        utterance ends earlier: a new press, a mode change, the end of the stream). Speech
        heard anywhere from the press to then keeps it (ended as a release would end it);
        none drops it as ``cancel()`` would have at the key-up."""
        return self._key_up(CommandKind.TAP)

    def _key_up(self, kind: CommandKind) -> list[Event]:
        if not self._pressed:
            return []
        self._pressed = False
        events: list[Event] = []
        if self._utt is not None:
            self._utt.released_at = self.position
            self._utt.released_by = kind
            self._advance(self._utt, events)
        self._trim()
        return events

    def toggle(self) -> list[Event]:
        return self.release() if self._pressed else self.press()

    def cancel(self) -> list[Event]:
        """Abandon the current utterance: nothing more of it is sent."""
        self._pressed = False
        utt = self._utt
        if utt is None:
            return []
        events: list[Event] = []
        self._discard(utt, events)
        self._floor = max(self._floor, self.position)
        return events

    def set_mode(self, mode: Mode) -> list[Event]:
        """Switch mode; an utterance in progress ends with what was sent so far."""
        events: list[Event] = []
        if mode is not self._mode:
            self._pressed = False
            if self._utt is not None:
                self._finish(
                    self._utt, EndReason.MODE_CHANGED, self._utt_emit_target(self._utt), events
                )
            self._mode = mode
        return events

    def flush(self) -> list[Event]:
        """End of stream: close the current utterance with the audio there is."""
        self._pressed = False
        utt = self._utt
        events: list[Event] = []
        if utt is not None:
            self._finish(utt, EndReason.STREAM_END, self._utt_emit_target(utt), events)
        return events

    # ---- internals ---------------------------------------------------------------------

    def _new_candidate(self, trigger: int, manual: bool) -> _Candidate:
        start = max(self._floor, trigger - self._pre_roll, self._hist.start)
        utt = _Candidate(self._next_id, start=start, trigger=trigger, manual=manual)
        self._next_id += 1
        return utt

    def _needed_speech(self, utt: _Candidate) -> int:
        if utt.manual or utt.continuation:
            return self._manual_min_speech
        return self._min_speech

    def _utt_emit_target(self, utt: _Candidate) -> int:
        """How far audio may be sent now: hands-free holds back silence beyond the tail
        (sent later if speech resumes, discarded if the utterance ends)."""
        end = self.position
        if not utt.manual and utt.silence_since is not None:
            return min(end, utt.silence_since + self._tail)
        if utt.released_at is not None:
            return min(end, utt.released_at + self._release_tail)
        return end

    def _advance(self, utt: _Candidate, events: list[Event]) -> None:
        end = self.position
        if not utt.confirmed and utt.speech_samples >= self._needed_speech(utt):
            utt.confirmed = True
            utt.emitted = utt.start
            events.append(UtteranceStarted(utt.utterance_id, utt.start, utt.trigger, self._mode))

        # Ends that the mode asks for.
        if utt.manual:
            if utt.released_at is not None and end >= utt.released_at + self._release_tail:
                self._finish(utt, EndReason.RELEASED, utt.released_at + self._release_tail, events)
                return
        elif utt.silence_since is not None and end - utt.silence_since >= self._min_silence:
            self._finish(utt, EndReason.SILENCE, min(end, utt.silence_since + self._tail), events)
            return

        # Length limits: split at a pause after the soft limit, anywhere at the hard one.
        length = end - utt.start
        at_pause = utt.silence_since is not None and end - utt.silence_since >= self._split_silence
        if length >= self._hard_max or (length >= self._soft_max and at_pause):
            self._split(utt, events)
            return

        if utt.confirmed:
            self._emit_to(utt, self._utt_emit_target(utt), events)

    def _split(self, utt: _Candidate, events: list[Event]) -> None:
        # Hands-free cuts a pause after its tail, like an ordinary end; manual modes send
        # everything while the key is held.
        cut = self.position if utt.manual else self._utt_emit_target(utt)
        cut = min(cut, utt.start + self._hard_max)  # chunks need not divide the limit
        released_at = utt.released_at
        released_by = utt.released_by
        manual = utt.manual
        in_pause = utt.silence_since is not None
        if utt.confirmed:
            self._end(utt, EndReason.MAX_LENGTH, cut, events)
        else:
            # Long candidate without enough speech (a held key, flickering noise).
            self._drop(utt, self._drop_reason(utt), events)
            if not manual:
                return  # noise: back to idle
        if manual and not (self._pressed or released_at is not None):
            return
        # Speech may go on past the cut: the next candidate starts right there (after a
        # drop: with its pre-roll), and one speech chunk confirms it, so the short rest of
        # a sentence is not dropped as "too short".
        nxt = self._new_candidate(trigger=cut, manual=manual)
        nxt.released_at = released_at
        nxt.released_by = released_by
        nxt.continuation = True
        if in_pause:
            nxt.silence_since = cut
        self._utt = nxt

    def _finish(self, utt: _Candidate, reason: EndReason, end_at: int, events: list[Event]) -> None:
        if self._outcome(utt) is HoldOutcome.DISCARD:
            self._discard(utt, events)
            # As a cancel at the key-up would have: the pressed audio is no one's pre-roll.
            if utt.released_at is not None:
                self._floor = max(self._floor, utt.released_at)
            return
        if utt.confirmed:
            self._end(utt, reason, end_at, events)
        else:
            self._drop(utt, self._drop_reason(utt), events)

    def _outcome(self, utt: _Candidate) -> HoldOutcome:
        """The fate of an ending utterance: a key-up is judged on every chunk fed since the
        press, release tail included; anything else is kept."""
        if utt.released_by is None:
            return HoldOutcome.KEEP
        return hold_outcome(utt.released_by, speech_heard=utt.speech_samples > 0)

    def _discard(self, utt: _Candidate, events: list[Event]) -> None:
        """End ``utt`` sending nothing more: the consumer cancels what was sent."""
        if utt.confirmed:
            self._end(utt, EndReason.CANCELLED, utt.emitted, events)
        else:
            self._drop(utt, DropReason.CANCELLED, events)

    def _drop_reason(self, utt: _Candidate) -> DropReason:
        return DropReason.TOO_SHORT if utt.speech_samples else DropReason.NO_SPEECH

    def _end(self, utt: _Candidate, reason: EndReason, end_at: int, events: list[Event]) -> None:
        self._emit_to(utt, end_at, events)
        events.append(
            UtteranceEnded(
                utterance_id=utt.utterance_id,
                reason=reason,
                start_sample=utt.start,
                end_sample=utt.emitted,
                speech_end_sample=utt.speech_end or utt.trigger,
                detected_at_sample=self.position,
            )
        )
        self._floor = max(self._floor, utt.emitted)
        self._utt = None

    def _drop(self, utt: _Candidate, reason: DropReason, events: list[Event]) -> None:
        events.append(
            UtteranceDropped(
                utterance_id=utt.utterance_id,
                reason=reason,
                start_sample=utt.start,
                end_sample=self.position,
                speech_samples=utt.speech_samples,
            )
        )
        self._utt = None

    def _emit_to(self, utt: _Candidate, target: int, events: list[Event]) -> None:
        while utt.emitted < target:
            stop = min(target, utt.emitted + self._max_chunk)
            pcm = self._hist.slice(utt.emitted, stop).astype("<i2", copy=False).tobytes()
            events.append(AudioChunk(utt.utterance_id, utt.emitted, pcm))
            utt.emitted = stop

    def _trim(self) -> None:
        keep = self.position - self._pre_roll
        utt = self._utt
        if utt is not None:
            keep = min(keep, utt.emitted if utt.confirmed else utt.start)
        self._hist.discard_before(keep)


def stamp(event: Event, now: float) -> Event:
    """Return ``event`` with its ``detected_at`` clock time set (where it has one)."""
    if isinstance(event, (UtteranceStarted, UtteranceEnded)):
        return replace(event, detected_at=now)
    return event
