"""Property: whatever a server does — any order, loss, duplication, refusal, error codes,
silence, disconnects, ``started`` sent, withheld or duplicated — every utterance reaches
exactly one outcome, never later than its deadline, what the client sends stays within
the limits the server advertised, and with ``start-ack`` no audio (nor stop) of a wire
utterance is sent before its ``started``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.client_events import (
    ClientEvent,
    FinalText,
    UtteranceCancelled,
    UtteranceFailed,
)
from protocol.client_machine import ClientMachine, Frame, MachineConfig
from protocol.limits import Limits
from protocol.messages import (
    START_ACK,
    Cancel,
    Error,
    ErrorCode,
    Final,
    Partial,
    Ready,
    Start,
    Started,
    Status,
    Stop,
    Timings,
)

CONFIG = MachineConfig(final_base_s=20.0, final_per_audio_s=1.0, max_open_s=120.0, max_retries=3)
#: Errors that end the open utterance early; it is decoded, a final follows.
CUTS = {ErrorCode.UTTERANCE_TOO_LONG, ErrorCode.SERVER_BUSY}
#: Errors after which the server holds no slot for the id (our server's behaviour).
FORGETS = set(ErrorCode) - {ErrorCode.FRAME_TOO_LARGE, *CUTS}

#: "final timed": with timings, saying it covers all the audio the server got for it.
REPLIES = ["final", "final timed", "partial", "duplicate", "unknown", "started", "started twice"]

link_limits = st.tuples(
    st.sampled_from([640, 2048, 32_000]),
    st.sampled_from([0.1, 1.0, 120.0]),
    st.integers(1, 4),
    st.sampled_from(["ready", "ready", "loading", "failed", "weird"]),
    st.booleans(),  # the server advertises start-ack
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("say"), st.integers(0, 6), st.booleans()),
        st.tuples(st.just("more"), st.integers(0, 9), st.integers(1, 4)),
        st.tuples(st.just("end"), st.integers(0, 9)),
        st.tuples(st.just("cancel"), st.integers(0, 9)),
        st.tuples(st.just("up"), link_limits),
        st.tuples(st.just("down")),
        st.tuples(
            st.just("answer"),
            st.integers(0, 20),
            st.sampled_from([*REPLIES, *ErrorCode]),
            st.booleans(),
        ),
        st.tuples(st.just("status"), st.sampled_from(["ready", "loading", "failed"])),
        st.tuples(st.just("time"), st.floats(0.0, 60.0)),
    ),
    max_size=60,
)


@dataclass
class World:
    machine: ClientMachine = field(default_factory=lambda: ClientMachine("p", CONFIG))
    now: float = 0.0
    link: bool = False
    limits: Limits = field(default_factory=Limits)
    said: list[int] = field(default_factory=list)
    ended: set[int] = field(default_factory=set)
    outcomes: dict[int, list[ClientEvent]] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)  # wire ids on this link
    unanswered: set[str] = field(default_factory=set)  # holding a server slot
    answered: list[str] = field(default_factory=list)
    ack: bool = False  # this link's server says "started"
    open: str | None = None  # the wire utterance audio goes to
    accepted: set[str] = field(default_factory=set)  # wire ids the server said started for
    received: dict[str, int] = field(default_factory=dict)  # audio bytes per wire id

    def flush(self) -> None:
        frames: list[Frame] = self.machine.data_to_send()
        if frames:
            assert self.link, "frames written with no link"
        for frame in frames:
            if isinstance(frame, Start):
                assert frame.id not in self.started, "wire ids are never reused on a link"
                self.started.append(frame.id)
                self.unanswered.add(frame.id)
                self.open = frame.id
                assert len(self.unanswered) <= self.limits.max_sessions_per_connection
            elif isinstance(frame, Cancel):
                self.unanswered.discard(frame.id)
                if frame.id == self.open:
                    self.open = None
            else:
                if self.ack:
                    assert self.open in self.accepted, "audio or stop before its started"
                if isinstance(frame, bytes):
                    assert 0 < len(frame) <= self.limits.max_audio_frame_bytes
                    if self.open is not None:
                        self.received[self.open] = self.received.get(self.open, 0) + len(frame)
                else:
                    assert isinstance(frame, Stop)
                    self.open = None
        for event in self.machine.events_to_deliver():
            if isinstance(event, (FinalText, UtteranceFailed, UtteranceCancelled)):
                assert event.utterance_id in self.said, "an outcome for nothing said"
                self.outcomes.setdefault(event.utterance_id, []).append(event)
                assert len(self.outcomes[event.utterance_id]) == 1, "two outcomes"

    def advance(self, seconds: float) -> None:
        """As a driver's timer does: tick at each deadline on the way."""
        target = self.now + seconds
        while True:
            due = self.machine.next_deadline()
            self.now = target if due is None or due > target else due
            self.machine.tick(self.now)
            self.flush()
            for local_id in self.machine.pending_ids():
                deadline = self.machine.deadline_of(local_id)
                assert deadline is not None and deadline > self.now, "pending past deadline"
            if self.now >= target:
                return

    def up(self, frame: int, seconds: float, slots: int, model: str, ack: bool = False) -> None:
        self.link, self.started, self.unanswered = True, [], set()
        self.ack, self.open, self.accepted = ack, None, set()
        self.limits = Limits(frame, seconds, slots)
        capabilities = (START_ACK,) if ack else ()
        ready = Ready(model_state=model, capabilities=capabilities, limits=self.limits.to_json())
        self.machine.link_up(ready, self.now)
        self.flush()

    def apply(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        m = self.machine
        if kind == "say":
            local_id = len(self.said) + 1
            self.said.append(local_id)
            m.utterance_started(local_id, self.now)
            for _ in range(action[1]):
                m.audio(local_id, b"\x01\x00" * 512, self.now)
            if action[2]:
                self.ended.add(local_id)
                m.utterance_ended(local_id, self.now)
        elif kind in ("more", "end", "cancel") and self.said:
            local_id = self.said[action[1] % len(self.said)]
            if kind == "more":
                for _ in range(action[2]):
                    m.audio(local_id, b"\x02\x00" * 512, self.now)
            elif kind == "end":
                self.ended.add(local_id)
                m.utterance_ended(local_id, self.now)
            else:
                self.ended.add(local_id)
                m.utterance_cancelled(local_id, self.now)
        elif kind == "up":
            if self.link:
                m.link_down("replaced", self.now)
            self.up(*action[1])
        elif kind == "down" and self.link:
            self.link = False
            m.link_down("lost", self.now)
        elif kind == "answer" and self.link and self.started:
            self.answer(self.started[action[1] % len(self.started)], action[2], action[3])
        elif kind == "status" and self.link:
            m.receive(Status(action[1]), self.now)
        elif kind == "time":
            self.advance(action[1])
            return
        self.flush()

    def answer(self, wire_id: str, what: object, fatal: bool) -> None:
        m = self.machine
        if what in ("final", "duplicate"):
            self.unanswered.discard(wire_id)
            for _ in range(2 if what == "duplicate" else 1):
                m.receive(Final("text", id=wire_id), self.now)
        elif what == "final timed":
            self.unanswered.discard(wire_id)
            audio_ms = self.received.get(wire_id, 0) / 32.0
            m.receive(Final("text", id=wire_id, timings=Timings(audio_ms=audio_ms)), self.now)
        elif what == "partial":
            m.receive(Partial("te", id=wire_id, stable="t", unstable="e"), self.now)
        elif what == "unknown":
            m.receive(Final("stranger", id="x" + wire_id), self.now)
        elif what in ("started", "started twice"):
            self.accepted.add(wire_id)
            for _ in range(2 if what == "started twice" else 1):
                m.receive(Started(wire_id), self.now)
        else:
            assert isinstance(what, ErrorCode)
            if what in FORGETS:
                self.unanswered.discard(wire_id)
            closes = what in FORGETS or what in CUTS
            if closes and wire_id == self.open:  # the server closed or forgot it
                self.open = None
            m.receive(Error(what, "scripted", id=wire_id, fatal=fatal), self.now)
            self.flush()
            if fatal:  # the server closes the link after a fatal error
                self.link = False
                m.link_down("closed", self.now)
        self.flush()  # written before the link is given up
        if m.wants_reconnect:  # as the drivers do
            self.link = False
            m.link_down("reconnecting", self.now)


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(link_limits, actions, st.booleans())
def test_every_utterance_gets_exactly_one_outcome_by_its_deadline(
    first_link: tuple[int, float, int, str], script: list[tuple[Any, ...]], server_comes_back: bool
) -> None:
    world = World()
    world.up(*first_link)
    for action in script:
        world.apply(action)
    for local_id in world.said:  # the user stops talking
        world.machine.utterance_ended(local_id, world.now)
    world.flush()
    if server_comes_back and not world.link:
        world.up(32_000, 120.0, 4, "ready")
    world.advance(10_000.0)
    assert world.machine.pending == 0
    assert sorted(world.outcomes) == world.said
