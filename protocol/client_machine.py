"""The client's protocol state machine, without I/O (as python-websockets' ``Protocol``
sits under its asyncio layer).

Inputs: segmenter-level events (utterance started / audio / ended / cancelled, by a
local utterance id), decoded server messages, link up (with the server's ``ready``) and
link down, and clock ticks. The clock is the caller's: every input carries ``now`` and
the machine never reads time itself. Outputs: frames to write, in order
(:meth:`ClientMachine.data_to_send`), and client events
(:meth:`ClientMachine.events_to_deliver`).

The machine owns the one ledger of utterances. Each one ends in exactly one outcome —
``FinalText``, ``UtteranceFailed`` (with a reason for the user) or
``UtteranceCancelled`` — and no later than its deadline (:meth:`ClientMachine.deadline_of`):
the end of speech plus a base wait plus a per-second-of-audio allowance.

Admission follows what the server advertises in ``ready``. A server with the
``start-ack`` capability answers each accepted ``start`` with ``started``: the machine
holds the utterance's audio (and its ``stop``) until then, so a refused start has lost
nothing on the wire; with an older server audio follows the start at once. Beyond that:
one open utterance at a time, at most
``max_sessions_per_connection`` unfinished ones, audio frames no larger than
``max_audio_frame_bytes``, and no wire utterance longer than ``max_utterance_seconds``:
a longer one is closed at the limit and continued as a new wire utterance; its text is
the segments' finals joined. A start the server refuses anyway is sent again (bounded,
see :data:`protocol.client_events.ERROR_OUTCOMES`); the audio stays here until the
utterance's outcome, so a refusal never loses it silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from protocol.audio import BYTES_PER_SECOND
from protocol.client_events import (
    ERROR_OUTCOMES,
    ClientEvent,
    ClientState,
    CloseCode,
    ErrorOutcome,
    FailReason,
    FinalText,
    ModelState,
    PartialText,
    StateChanged,
    UtteranceCancelled,
    UtteranceFailed,
)
from protocol.client_timeline import UtteranceTimeline
from protocol.limits import HARD_MAX_FRAME_BYTES, Limits
from protocol.messages import (
    START_ACK,
    Cancel,
    Error,
    ErrorCode,
    Final,
    Partial,
    Ready,
    ServerMessage,
    Start,
    Started,
    Status,
    Stop,
    Timings,
)

log = logging.getLogger(__name__)

#: What the driver writes to the socket, in order: control messages and audio frames.
Frame = Start | Stop | Cancel | bytes

#: Errors after which the server holds nothing for the id they name (a refused start, a
#: lost or failed utterance): the session no longer occupies a slot.
_SERVER_FORGETS = frozenset(
    {
        ErrorCode.BAD_MESSAGE,
        ErrorCode.UNSUPPORTED_AUDIO,
        ErrorCode.UNSUPPORTED_LANGUAGE,
        ErrorCode.ALREADY_STARTED,
        ErrorCode.DUPLICATE_ID,
        ErrorCode.TOO_MANY_SESSIONS,
        ErrorCode.NOT_READY,
        ErrorCode.SHUTTING_DOWN,
        ErrorCode.NO_UTTERANCE,
        ErrorCode.ENGINE_ERROR,
        ErrorCode.INTERNAL,
    }
)

_MIN_FRAME_BYTES = 640  # 20 ms: the smallest audio frame we send
#: A final's ``timings.audio_ms`` comes rounded to 0.1 ms (3.2 bytes); frames are longer.
_CUT_TOLERANCE_BYTES = 4


@dataclass(frozen=True)
class MachineConfig:
    """Deadlines and bounds. The defaults suit the tray app."""

    #: After the end of speech an utterance has ``final_base_s`` plus
    #: ``final_per_audio_s`` per second of its audio to get its final; then it fails.
    #: A link the server is closing (``shutting_down``) is kept for the finals still
    #: due on it for at most ``final_base_s`` too, then closed by the client.
    final_base_s: float = 60.0
    final_per_audio_s: float = 2.0
    #: An utterance the segmenter never ends fails this long after it started.
    max_open_s: float = 900.0
    #: Text of an utterance sent again (after a reconnect or refusal) that arrives later
    #: than this after the end of speech is stale: shown in history, not typed.
    stale_after_s: float = 30.0
    #: Refusals (or losses) of one utterance by a connected server before it fails.
    max_retries: int = 5
    #: Audio kept for unfinished utterances; beyond it the oldest ones fail.
    max_backlog_bytes: int = 20 * 60 * BYTES_PER_SECOND
    #: After the server closed an idle link (close codes 4000/4001) the client stays
    #: unconnected until an utterance starts, or this long to refresh what it shows.
    calm_refresh_s: float = 900.0
    #: ``too_many_sessions`` while this client holds no slot (others hold them), or a
    #: ``server_busy`` cut that kept none of the audio (the server's audio budget is
    #: full): the start is tried again after this wait, doubling up to the maximum,
    #: until the utterance's deadline (such refusals do not count against
    #: ``max_retries``).
    busy_retry_first_s: float = 0.25
    busy_retry_max_s: float = 5.0


@dataclass
class _Session:
    """One wire utterance (a segment of a local one) on the current link."""

    wire_id: str
    local_id: int
    start: int  # byte offset into the local utterance's audio
    sent_to: int  # bytes up to here were sent
    end: int | None = None  # set when stop is sent
    text: str | None = None  # its final, once received
    language: str | None = None
    timings: Timings | None = None
    retired: bool = False  # no longer counted for the utterance; occupies a slot until answered
    accepted: bool = True  # the server said "started" (or does not say it): audio may follow
    #: Why the server ended it before our stop (``server_busy``, ``utterance_too_long``);
    #: ``end`` is an upper bound until its final says how much of the audio it covers.
    cut: ErrorCode | None = None
    frame_ends: list[int] = field(default_factory=list)  # where each audio frame sent ended

    @property
    def unsettled(self) -> bool:
        """Cut by the server, its final not in: where the next part starts is unknown."""
        return self.cut is not None and self.text is None


@dataclass
class _Utterance:
    local_id: int
    timeline: UtteranceTimeline
    started_at: float
    audio: bytearray = field(default_factory=bytearray)
    ended: bool = False
    ended_at: float | None = None
    final_texts: list[str] = field(default_factory=list)  # finals of the leading segments
    final_end: int = 0  # byte offset up to which final_texts cover the audio
    language: str | None = None
    timings: Timings | None = None
    inflight: list[_Session] = field(default_factory=list)
    retries: int = 0
    replayed: bool = False  # sent more than once: its text may be stale
    last_error: str = ""

    def next_offset(self) -> int:
        """Where the next segment starts (called while none of its sessions is open)."""
        if self.inflight:
            last = self.inflight[-1].end
            assert last is not None, "the open session is still being fed"
            return last
        return self.final_end


def join_segments(parts: list[str]) -> str:
    """Texts of consecutive segments: a space between words, none between CJK text."""
    out = ""
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if out and not (_is_wide(out[-1]) and _is_wide(part[0])):
            out += " "
        out += part
    return out


def _is_wide(char: str) -> bool:
    return ord(char) >= 0x2E80  # CJK and beyond: written without spaces


class ClientMachine:
    """The ledger and the link's protocol state. Not thread-safe: one driver owns it."""

    def __init__(
        self,
        run_tag: str,
        config: MachineConfig | None = None,
        *,
        language: str | None = None,
        context: str = "",
    ) -> None:
        self.config = config or MachineConfig()
        self.language = language  # read at each start: settings may change between them
        self.context = context
        self._tag = run_tag
        self._attempts = 0
        self._utts: dict[int, _Utterance] = {}
        self._backlog = 0
        self._out: list[Frame] = []
        self._events: list[ClientEvent] = []
        self.state = ClientState.CONNECTING
        # the current link
        self._link_up = False
        self._draining = False  # the server is going away: send nothing more
        self._drain_until = 0.0  # then close the draining link, finals due or not
        self._want_reconnect = False
        self._model = ModelState.LOADING
        self._sessions: dict[str, _Session] = {}  # wire id → session holding a server slot
        self._open: _Session | None = None
        self._frame_cap = Limits().max_audio_frame_bytes
        self._segment_cap = int(Limits().max_utterance_seconds * BYTES_PER_SECOND)
        self._slot_cap = Limits().max_sessions_per_connection
        self._start_ack = False  # the server answers accepted starts with "started"
        self._unknown_ids = 0
        self._calm_since: float | None = None  # unconnected on purpose since then
        self._busy_refusals = 0  # too_many_sessions in a row while holding no slot
        self._budget_refusals = 0  # server_busy cuts in a row that kept no audio
        self._busy_until = 0.0  # no new start before this (0: none pending)

    # ---------------------------------------------------------------- outputs

    def data_to_send(self) -> list[Frame]:
        out, self._out = self._out, []
        return out

    def events_to_deliver(self) -> list[ClientEvent]:
        events, self._events = self._events, []
        return events

    @property
    def wants_reconnect(self) -> bool:
        """The link is no use any more (desynchronised, server gone): close it; the next
        link replays what is unfinished. A link the server is closing is kept until no
        final is due on it (or its drain deadline): those finals are not decoded twice."""
        if not self._link_up:
            return False
        return self._want_reconnect or (self._draining and not self._finals_due())

    @property
    def draining(self) -> bool:
        """The server is closing this link: nothing new is sent on it."""
        return self._link_up and self._draining

    def _finals_due(self) -> bool:
        """A final someone waits for is still to come on this link."""
        return any(s.end is not None and not s.retired for s in self._sessions.values())

    @property
    def pending(self) -> int:
        """Utterances without an outcome yet."""
        return len(self._utts)

    def pending_ids(self) -> list[int]:
        return sorted(self._utts)

    def stop_written(self, local_id: int) -> bool:
        """Whether the utterance's last ``stop`` has been handed out by
        :meth:`data_to_send` (with ``start-ack`` it waits for ``started``), or the
        utterance has its outcome already."""
        u = self._utts.get(local_id)
        return u is None or u.timeline.stop_sent is not None

    def deadline_of(self, local_id: int) -> float | None:
        u = self._utts.get(local_id)
        return None if u is None else self._deadline(u)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must be called next (None: nothing pending)."""
        due = min((self._deadline(u) for u in self._utts.values()), default=None)
        if self._busy_until and due is not None:
            due = min(due, self._busy_until)  # a refused start is tried again then
        if self.draining and not self._want_reconnect:
            due = self._drain_until if due is None else min(due, self._drain_until)
        return due

    def wants_link(self, now: float) -> bool:
        """Whether the driver should connect now. False only in the calm state (the
        server closed an idle link) with nothing pending, until the refresh is due."""
        if self._calm_since is None or self._utts:
            return True
        return now >= self._calm_since + self.config.calm_refresh_s

    def calm_until(self) -> float | None:
        """In the calm state: when a link is due anyway, to refresh server state."""
        if self._calm_since is None:
            return None
        return self._calm_since + self.config.calm_refresh_s

    def leave_calm(self, now: float) -> None:
        """Connect at the next chance (new settings, an utterance)."""
        self._calm_since = None

    def _deadline(self, u: _Utterance) -> float:
        c = self.config
        if not u.ended or u.ended_at is None:
            return u.started_at + c.max_open_s
        return u.ended_at + c.final_base_s + c.final_per_audio_s * len(u.audio) / BYTES_PER_SECOND

    # ---------------------------------------------------------------- segmenter inputs

    def utterance_started(
        self, local_id: int, now: float, detected_at: float | None = None
    ) -> None:
        if local_id in self._utts:
            log.warning("utterance %d started twice; ignored", local_id)
            return
        self.leave_calm(now)  # the driver connects; the audio waits here meanwhile
        timeline = UtteranceTimeline(local_id, speech_started=detected_at or now)
        self._utts[local_id] = _Utterance(local_id, timeline, started_at=now)
        self._pump(now)

    def audio(self, local_id: int, pcm: bytes, now: float) -> None:
        u = self._utts.get(local_id)
        if u is None or u.ended:
            return  # cancelled, failed or finished: nothing waits for this audio
        u.audio += pcm
        self._backlog += len(pcm)
        self._trim_backlog(now)
        self._pump(now)

    def utterance_ended(
        self,
        local_id: int,
        now: float,
        detected_at: float | None = None,
        positions: tuple[int, int, int, int] | None = None,
    ) -> None:
        """``positions``: the segmenter's start, end, speech-end and detected-at samples."""
        u = self._utts.get(local_id)
        if u is None or u.ended:
            return
        u.ended, u.ended_at = True, now
        u.timeline.speech_end_detected = detected_at or now
        if positions is not None:
            u.timeline.set_audio_positions(*positions)
        else:
            u.timeline.audio_s = len(u.audio) / BYTES_PER_SECOND
        self._pump(now)

    def utterance_cancelled(self, local_id: int, now: float) -> None:
        u = self._utts.get(local_id)
        if u is None:
            return
        self._retire(u)
        self._finish(u)
        self._events.append(UtteranceCancelled(local_id))
        self._pump(now)

    # ---------------------------------------------------------------- link inputs

    def connecting(self, now: float) -> None:
        """A connection attempt starts. Out of the calm state because an utterance
        started, the state stays calm until the link is up or fails: nothing is wrong,
        and the tray keeps showing the user speaking rather than "connecting"."""
        on_speech = self.state is ClientState.IDLE_DISCONNECTED and bool(self._utts)
        self.leave_calm(now)
        if not on_speech:
            self._set_state(ClientState.CONNECTING)

    def link_failed(self, state: ClientState, detail: str, now: float) -> None:
        """A connection attempt failed; ``state`` says how (unreachable, auth...)."""
        self._set_state(state, detail)

    def link_up(self, ready: Ready, now: float) -> None:
        self._drop_link()
        self._link_up = True
        self._apply_limits(ready)
        self._start_ack = START_ACK in ready.capabilities
        self._set_model(ModelState.parse(ready.model_state), ready.server, now)

    def _apply_limits(self, ready: Ready) -> None:
        limits = ready.limits
        default = Limits()
        # Clamped: a hostile "ready" must not make us send 2-byte frames or 1 ms parts.
        frame = limits.get("max_audio_frame_bytes", default.max_audio_frame_bytes)
        self._frame_cap = int(min(max(frame, _MIN_FRAME_BYTES), HARD_MAX_FRAME_BYTES)) // 2 * 2
        seconds = limits.get("max_utterance_seconds", default.max_utterance_seconds)
        self._segment_cap = int(min(max(seconds, 1.0), 3600.0) * BYTES_PER_SECOND) // 2 * 2
        slots = limits.get("max_sessions_per_connection", default.max_sessions_per_connection)
        self._slot_cap = int(min(max(slots, 1), 1000))

    def link_down(self, detail: str, now: float, close_code: int | None = None) -> None:
        """The link ended. ``close_code``: the server's WebSocket close code, if any.
        An idle close (4000 idle timeout, 4001 displaced) with nothing pending leads to
        the calm state: no reconnect until :meth:`wants_link` says so, so idle clients
        at a full server do not displace each other in a loop."""
        self._drop_link()
        if CloseCode.calm(close_code) and not self._utts:
            self._calm_since = now
            self._set_state(ClientState.IDLE_DISCONNECTED, "connects when you speak")
        else:
            self._set_state(ClientState.UNREACHABLE, detail)
        self._fail_overdue(now)

    def _drop_link(self) -> None:
        self._link_up = self._draining = self._want_reconnect = False
        self._busy_refusals, self._budget_refusals, self._busy_until = 0, 0, 0.0
        self._sessions.clear()
        self._open = None
        for u in self._utts.values():
            if u.inflight:
                u.inflight = []  # everything past its finished prefix is sent again
                u.replayed = True

    # ---------------------------------------------------------------- server input

    def receive(self, message: ServerMessage, now: float) -> None:
        if isinstance(message, Final):
            self._on_final(message, now)
        elif isinstance(message, Partial):
            self._on_partial(message, now)
        elif isinstance(message, Error):
            self._on_error(message, now)
        elif isinstance(message, Started):
            self._on_started(message)
        elif isinstance(message, Status):
            self._set_model(ModelState.parse(message.model_state), message.message, now)
        else:  # a second ready: take its limits, keep the link's sessions
            self._apply_limits(message)
            self._start_ack = START_ACK in message.capabilities
            if not self._start_ack and self._open is not None:
                self._open.accepted = True  # no "started" will come for it
            self._set_model(ModelState.parse(message.model_state), message.server, now)
        self._pump(now)

    def _on_final(self, final: Final, now: float) -> None:
        s = self._sessions.get(final.id)
        if s is None:
            self._unknown_ids += 1
            if self._unknown_ids == 1:  # once: a buggy server could send thousands
                log.warning("final for an utterance this client did not start; ignored")
            return
        if s.end is None:
            log.debug("final for utterance %s before its stop; ignored", final.id)
            return
        del self._sessions[final.id]
        self._busy_refusals = 0
        if s.retired:
            return
        text = final.text
        if s.cut is not None:
            s.end = self._cut_end(s, final)
            kept = s.end - s.start
            if s.cut is ErrorCode.UTTERANCE_TOO_LONG:
                # The server's real limit is what it kept: later parts stay within it.
                cap = kept if kept > 0 else self._segment_cap // 4 * 2
                self._segment_cap = max(BYTES_PER_SECOND, min(self._segment_cap, cap))
            if kept > 0:
                self._budget_refusals = 0
            else:  # none of the audio got in (or the final cannot be placed): all again
                text = ""
                if s.cut is ErrorCode.SERVER_BUSY:
                    self._budget_refusals += 1
                    self._back_off(self._budget_refusals, now)
        s.text, s.language, s.timings = text, final.language, final.timings
        u = self._utts[s.local_id]
        while u.inflight and u.inflight[0].text is not None:  # finals of a prefix, in order
            done = u.inflight.pop(0)
            u.final_texts.append(done.text or "")
            u.final_end = done.end or u.final_end
            u.language = done.language or u.language
            u.timings = done.timings
        self._complete_if_done(u, now)

    def _on_started(self, started: Started) -> None:
        s = self._sessions.get(started.id)
        if s is None or s.accepted:  # a duplicate, or a start given up since
            log.debug("started for %s: nothing waits for it; ignored", started.id)
            return
        s.accepted = True  # _pump (after every input) sends its audio now
        self._busy_refusals = 0

    def _on_partial(self, partial: Partial, now: float) -> None:
        s = self._sessions.get(partial.id)
        if s is None or s.retired:
            return
        u = self._utts[s.local_id]
        if u.ended:
            return  # the user stopped speaking: only the final matters now
        if u.timeline.first_partial is None:
            u.timeline.first_partial = now
        prefix = join_segments(u.final_texts)  # earlier segments of a long utterance
        stable = join_segments([prefix, partial.stable]) if prefix else partial.stable
        self._events.append(PartialText(u.local_id, stable, partial.unstable))

    def _cut_end(self, s: _Session, final: Final) -> int:
        """Where the server ended a cut session: it keeps whole frames, up to the one that
        did not fit, and its final says how much audio it decoded. Without timings
        nothing can be placed: as if it kept nothing."""
        if final.timings is None:
            return s.start
        covered = s.start + final.timings.audio_ms * BYTES_PER_SECOND / 1000.0
        kept = [end for end in s.frame_ends if end <= covered + _CUT_TOLERANCE_BYTES]
        return kept[-1] if kept else s.start

    def _on_error(self, error: Error, now: float) -> None:
        outcome = ERROR_OUTCOMES[error.code]
        s = self._sessions.get(error.id) if error.id else None
        if error.fatal:
            self._draining = self._want_reconnect = True  # the server closes this link
        elif outcome is ErrorOutcome.REPLAY_ELSEWHERE:
            self._start_draining(now)
        if s is None:
            if outcome is ErrorOutcome.RECONNECT:
                self._want_reconnect = True
            log.info("server error %s: %s", error.code.value, error.message)
            return
        if s.cut is not None and error.code is ErrorCode.NO_UTTERANCE:
            return  # our stop crossed the server's cut: its final still comes
        if outcome is ErrorOutcome.FINISHED_EARLY:
            self._cut(s, error)
            return
        if error.code in _SERVER_FORGETS or s.retired:
            if s is self._open:
                self._open = None
            del self._sessions[s.wire_id]
        if s.retired:
            return
        u = self._utts[s.local_id]
        u.last_error = error.message or error.code.value
        log.info("utterance %d: server error %s", u.local_id, error.code.value)
        if outcome is ErrorOutcome.FAIL:
            reason = (
                FailReason.ENGINE_ERROR
                if error.code in (ErrorCode.ENGINE_ERROR, ErrorCode.INTERNAL)
                else FailReason.REFUSED
            )
            self._fail(u, reason, _user_message(error))
            return
        if outcome is ErrorOutcome.RECONNECT:
            self._want_reconnect = True
        elif outcome is ErrorOutcome.WAIT_FOR_MODEL:
            self._model = ModelState.LOADING
            self._set_state(ClientState.MODEL_LOADING, error.message)
        elif outcome is ErrorOutcome.WAIT_FOR_SLOT:
            self._slot_cap = max(1, min(self._slot_cap, len(self._sessions)))
            if not self._sessions:  # no final of ours will free a slot: try again later
                self._busy_refusals += 1
                self._back_off(self._busy_refusals, now)
                self._retire(u, from_session=s)
                u.replayed = True
                return  # bounded by its deadline, not by max_retries
        elif error.code is ErrorCode.FRAME_TOO_LARGE:
            self._frame_cap = max(_MIN_FRAME_BYTES, self._frame_cap // 4 * 2)
        self._retire(u, from_session=s)
        u.replayed = True
        if outcome in (ErrorOutcome.REPLAY_ELSEWHERE, ErrorOutcome.RECONNECT):
            return  # not the utterance's fault: it does not count as a retry
        u.retries += 1
        if u.retries > self.config.max_retries:
            reason = (
                FailReason.MODEL_UNAVAILABLE
                if outcome is ErrorOutcome.WAIT_FOR_MODEL
                else FailReason.TOO_MANY_RETRIES
            )
            message = f"the server refused it {u.retries} times (last: {u.last_error})"
            self._fail(u, reason, message)

    def _cut(self, s: _Session, error: Error) -> None:
        """``server_busy`` (its audio budget is full) or ``utterance_too_long`` (its limit
        is shorter than it said): the server ended ``s`` early and decodes what it kept,
        whole frames. Its final counts for that much; the rest of the audio is sent as a
        new part once the final says where the cut was."""
        if s is self._open:
            self._open = None
        if s.end is None:
            s.end = s.sent_to  # no stop follows: the server closed it
        s.cut = error.code
        if not s.retired:
            u = self._utts[s.local_id]
            u.last_error = error.message or error.code.value
            log.info(
                "utterance %d: server error %s; the rest follows", u.local_id, error.code.value
            )

    def _start_draining(self, now: float) -> None:
        """The server is closing this link: nothing new on it; the finals due on it are
        awaited (bounded), then the client closes it and replays the rest elsewhere."""
        if not self._draining:
            self._draining = True
            self._drain_until = now + self.config.final_base_s

    def _back_off(self, refusals: int, now: float) -> None:
        """No new start for a while: the first wait, doubling per refusal up to the most."""
        c = self.config
        delay = c.busy_retry_first_s * 2.0 ** min(refusals - 1, 30)
        self._busy_until = now + min(c.busy_retry_max_s, delay)

    def _set_model(self, model: ModelState, detail: str, now: float) -> None:
        self._model = model
        if model is ModelState.READY:
            self._set_state(ClientState.READY, detail)
        elif model is ModelState.FAILED:
            self._set_state(ClientState.MODEL_LOADING, f"the model failed to load: {detail}")
        else:
            self._set_state(ClientState.MODEL_LOADING, detail)
        self._pump(now)

    # ---------------------------------------------------------------- time

    def tick(self, now: float) -> None:
        if self._busy_until and now >= self._busy_until:
            self._busy_until = 0.0
        if self.draining and not self._want_reconnect and now >= self._drain_until:
            log.warning(
                "finals not in %g s after the server began closing; closing",
                self.config.final_base_s,
            )
            self._want_reconnect = True  # what is still due is sent again on the next link
        self._fail_overdue(now)
        self._pump(now)

    def _fail_overdue(self, now: float) -> None:
        for u in sorted(self._utts.values(), key=lambda x: x.local_id):
            if now < self._deadline(u):
                continue
            reason = FailReason.TIMED_OUT
            if not u.ended:
                message = f"still open after {self.config.max_open_s:g} s; discarded"
            elif self._link_up and self._model is not ModelState.READY and not u.inflight:
                reason = FailReason.MODEL_UNAVAILABLE
                message = "the server's model was still loading; not transcribed"
            elif self._link_up and self._busy_refusals and not u.inflight:
                message = "the server had no free session for it (too_many_sessions) in time"
            elif self._link_up and self._budget_refusals and not u.inflight:
                message = "the server had no room for its audio (server_busy) in time"
            elif self._link_up:
                message = f"no result from the server within {now - (u.ended_at or now):.0f} s"
                self._want_reconnect = True  # its slot may be stuck: a new link frees it
            else:
                reason = FailReason.UNREACHABLE
                message = "the server could not be reached in time; not transcribed"
            self._fail(u, reason, message)

    def abandon(self, reason: FailReason, message: str, now: float) -> None:
        """Fail every pending utterance (a driver that stops, or does not replay)."""
        for u in sorted(self._utts.values(), key=lambda x: x.local_id):
            self._fail(u, reason, message)

    # ---------------------------------------------------------------- the ledger

    def _set_state(self, state: ClientState, detail: str = "") -> None:
        if state is not self.state or detail:
            self.state = state
            self._events.append(StateChanged(state, detail))

    def _finish(self, u: _Utterance) -> None:
        del self._utts[u.local_id]
        self._backlog -= len(u.audio)

    def _fail(self, u: _Utterance, reason: FailReason, message: str) -> None:
        self._retire(u)
        self._finish(u)
        log.info("utterance %d failed (%s)", u.local_id, reason.value)
        stop_sent = u.timeline.stop_sent is not None
        self._events.append(UtteranceFailed(u.local_id, message, reason, stop_sent))

    def _retire(self, u: _Utterance, from_session: _Session | None = None) -> None:
        """Forget the utterance's sessions (all, or from ``from_session`` on): a stopped
        one keeps its server slot until the server answers it; the open one is
        cancelled on the server. Its audio stays: the rest is sent again."""
        keep = u.inflight.index(from_session) if from_session in u.inflight else 0
        for s in u.inflight[keep:]:
            s.retired = True
            if s is self._open:
                self._open = None
                del self._sessions[s.wire_id]
                if self._link_up and not self._draining:
                    self._out.append(Cancel(s.wire_id))
        del u.inflight[keep:]

    def _complete_if_done(self, u: _Utterance, now: float) -> None:
        if not (u.ended and not u.inflight and u.final_texts and u.final_end >= len(u.audio)):
            return
        self._finish(u)
        u.timeline.final_received = now
        stale = u.replayed and now - (u.ended_at or now) > self.config.stale_after_s
        text = join_segments(u.final_texts) if len(u.final_texts) > 1 else u.final_texts[0]
        self._events.append(
            FinalText(u.local_id, text, u.language, u.timeline, stale, timings=u.timings)
        )

    def _trim_backlog(self, now: float) -> None:
        for u in sorted(self._utts.values(), key=lambda x: x.local_id):
            if self._backlog <= self.config.max_backlog_bytes:
                return
            self._fail(
                u,
                FailReason.BACKLOG_FULL,
                "too much audio waiting for the server; the oldest was discarded",
            )

    # ---------------------------------------------------------------- sending

    def _pump(self, now: float) -> None:
        """Bring the server up to date: audio of the open session, then the next start."""
        if not self._link_up or self._draining or self._want_reconnect:
            return  # nothing more on a link that is going away
        if self._model is ModelState.FAILED:
            for waiting in sorted(self._utts.values(), key=lambda x: x.local_id):
                if not waiting.inflight:
                    self._fail(
                        waiting,
                        FailReason.MODEL_UNAVAILABLE,
                        "the server's model failed to load; not transcribed",
                    )
        while True:
            if self._open is not None and not self._feed_open(now):
                return  # waiting for more audio
            if self._model is not ModelState.READY or len(self._sessions) >= self._slot_cap:
                return
            if now < self._busy_until:
                return  # the server was full: the next start waits (tick wakes us)
            nxt = self._next_to_start()
            if nxt is None:
                return
            u = nxt
            self._attempts += 1
            wire_id = f"{self._tag}-{u.local_id}-{self._attempts}"
            offset = u.next_offset()
            s = _Session(
                wire_id, u.local_id, start=offset, sent_to=offset, accepted=not self._start_ack
            )
            self._sessions[wire_id] = s
            self._open = s
            u.inflight.append(s)
            self._out.append(Start(id=wire_id, language=self.language, context=self.context))

    def _next_to_start(self) -> _Utterance | None:
        for local_id in sorted(self._utts):
            u = self._utts[local_id]
            if u.inflight and u.inflight[-1].unsettled:
                return None  # its rest starts where its final says the server cut it
            offset = u.next_offset()
            if offset < len(u.audio) or not u.ended:
                return u
            if not u.audio and not u.inflight and not u.final_texts:
                return u  # an empty utterance still gets its (empty) final
        return None

    def _feed_open(self, now: float) -> bool:
        """Send the open session's audio; True once it is stopped."""
        s = self._open
        assert s is not None
        if not s.accepted:
            return False  # audio and stop wait for "started": a refusal loses nothing
        u = self._utts[s.local_id]
        cap_end = s.start + self._segment_cap
        available = min(len(u.audio), cap_end)
        while s.sent_to < available:
            n = min(self._frame_cap, available - s.sent_to)
            self._out.append(bytes(u.audio[s.sent_to : s.sent_to + n]))
            s.sent_to += n
            s.frame_ends.append(s.sent_to)
        full = s.sent_to >= cap_end and (len(u.audio) > cap_end or not u.ended)
        last = u.ended and s.sent_to >= len(u.audio)
        if not (full or last):
            return False
        s.end = s.sent_to
        self._open = None
        self._out.append(Stop(id=s.wire_id))
        if last:
            u.timeline.stop_sent = now
        return True


def _user_message(error: Error) -> str:
    if error.code is ErrorCode.UNSUPPORTED_LANGUAGE:
        return f"the server does not know this language ({error.message}); check Language"
    if error.code is ErrorCode.ENGINE_ERROR:
        return f"recognition failed on the server: {error.message}"
    return f"the server refused it: {error.message or error.code.value}"
