"""The client machine against scripted servers, with a fake clock (pure lane)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from protocol.audio import BYTES_PER_SECOND
from protocol.client_events import (
    ERROR_OUTCOMES,
    ClientEvent,
    ClientState,
    ErrorOutcome,
    FailReason,
    FinalText,
    PartialText,
    StateChanged,
    UtteranceCancelled,
    UtteranceFailed,
)
from protocol.client_machine import ClientMachine, Frame, MachineConfig, join_segments
from protocol.codec import ProtocolError, decode_server, encode_server
from protocol.limits import MAX_SERVER_MESSAGE_BYTES, Limits
from protocol.messages import (
    Cancel,
    Error,
    ErrorCode,
    Final,
    Partial,
    Ready,
    Start,
    Status,
    Stop,
    Timings,
)

SECOND = BYTES_PER_SECOND


def ready(model_state: str = "ready", **limits: float) -> Ready:
    return Ready(
        server="scripted", model_state=model_state, limits={**Limits().to_json(), **limits}
    )


@dataclass
class Wire:
    """What the machine sent, read back the way our server reads it."""

    starts: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    audio: dict[str, bytearray] = field(default_factory=dict)
    frame_sizes: list[int] = field(default_factory=list)
    open: str | None = None

    def take(self, frames: list[Frame]) -> None:
        for frame in frames:
            if isinstance(frame, Start):
                assert self.open is None, "a start while another utterance is open"
                self.starts.append(frame.id)
                self.audio[frame.id] = bytearray()
                self.open = frame.id
            elif isinstance(frame, Stop):
                assert frame.id == self.open
                self.stops.append(frame.id)
                self.open = None
            elif isinstance(frame, Cancel):
                assert frame.id == self.open
                self.cancels.append(frame.id)
                self.open = None
            else:
                assert self.open is not None, "audio with no open utterance"
                self.audio[self.open] += frame
                self.frame_sizes.append(len(frame))


class Harness:
    """A machine, a fake clock and everything it said."""

    def __init__(self, config: MachineConfig | None = None, **kwargs: object) -> None:
        self.now = 1000.0
        self.machine = ClientMachine("t", config, **kwargs)  # type: ignore[arg-type]
        self.wire = Wire()
        self.events: list[ClientEvent] = []

    def flush(self) -> None:
        self.wire.take(self.machine.data_to_send())
        self.events += self.machine.events_to_deliver()

    def up(self, r: Ready | None = None) -> None:
        self.wire.open = None  # a new link has nothing open
        self.machine.link_up(r or ready(), self.now)
        self.flush()

    def down(self) -> None:
        self.machine.link_down("lost", self.now)
        self.flush()

    def say(self, local_id: int, pcm: bytes, *, end: bool = True, chunk: int = 1024) -> None:
        self.machine.utterance_started(local_id, self.now)
        for offset in range(0, len(pcm), chunk):
            self.machine.audio(local_id, pcm[offset : offset + chunk], self.now)
        if end:
            self.machine.utterance_ended(local_id, self.now)
        self.flush()

    def server(self, *messages: object) -> None:
        for message in messages:
            self.machine.receive(message, self.now)  # type: ignore[arg-type]
        self.flush()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.machine.tick(self.now)
        self.flush()

    def outcomes(self) -> list[ClientEvent]:
        return [
            e
            for e in self.events
            if isinstance(e, (FinalText, UtteranceFailed, UtteranceCancelled))
        ]


def pcm(seconds: float, value: int = 1) -> bytes:
    return bytes([value, 0]) * int(seconds * SECOND // 2)


def test_every_error_code_has_one_outcome() -> None:
    assert set(ERROR_OUTCOMES) == set(ErrorCode)


def test_plain_utterance_reaches_its_final_with_a_timeline() -> None:
    h = Harness()
    h.up()
    audio = pcm(1.0)
    h.say(1, audio)
    assert len(h.wire.starts) == 1 and h.wire.stops == h.wire.starts
    assert bytes(h.wire.audio[h.wire.starts[0]]) == audio
    h.now += 0.2
    timings = Timings(audio_ms=1000.0, total_ms=180.0)
    h.server(Final("hello", id=h.wire.starts[0], language="en", timings=timings))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and final.text == "hello" and not final.stale
    assert final.language == "en" and final.timings == timings
    assert final.timeline.stop_to_final() == pytest.approx(0.2)
    assert h.machine.pending == 0


def test_audio_is_split_at_the_servers_frame_limit() -> None:
    h = Harness()
    h.up(ready(max_audio_frame_bytes=1000))
    h.say(1, pcm(0.5), chunk=4096)
    assert max(h.wire.frame_sizes) <= 1000
    assert sum(h.wire.frame_sizes) == len(pcm(0.5))


def test_an_utterance_longer_than_the_server_allows_continues_as_a_second_one() -> None:
    h = Harness()
    h.up(ready(max_utterance_seconds=2.0))
    audio = pcm(3.0, 1) + pcm(2.0, 2)
    h.say(1, audio)
    first, second, third = h.wire.starts
    assert [len(h.wire.audio[i]) for i in (first, second, third)] == [
        2 * SECOND,
        2 * SECOND,
        SECOND,
    ]
    assert b"".join(h.wire.audio[i] for i in (first, second, third)) == audio
    h.server(Final("one", id=first), Final("two", id=second))
    assert h.outcomes() == []
    h.server(Final("three", id=third))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and final.text == "one two three"


def test_segments_of_chinese_text_join_without_spaces() -> None:
    assert join_segments(["你好", "世界"]) == "你好世界"
    assert join_segments(["hello", "", "world "]) == "hello world"


def test_no_more_unfinished_utterances_than_the_server_allows() -> None:
    h = Harness()
    h.up(ready(max_sessions_per_connection=1))
    h.say(1, pcm(0.2))
    h.say(2, pcm(0.2))
    assert len(h.wire.starts) == 1  # the second waits for a free slot
    h.server(Final("a", id=h.wire.starts[0]))
    assert len(h.wire.starts) == 2
    h.server(Final("b", id=h.wire.starts[1]))
    assert [e.text for e in h.outcomes() if isinstance(e, FinalText)] == ["a", "b"]


def test_too_many_sessions_is_sent_again_once_a_slot_frees_not_dropped() -> None:
    h = Harness()
    h.up()
    h.say(1, pcm(0.3, 1))
    h.say(2, pcm(0.3, 2))
    first, second = h.wire.starts
    h.server(Error(ErrorCode.TOO_MANY_SESSIONS, "full", id=second))
    assert len(h.wire.starts) == 2  # waits: the server's real limit is one
    h.server(Final("a", id=first))
    third = h.wire.starts[2]
    assert bytes(h.wire.audio[third]) == pcm(0.3, 2)  # all of it, again
    h.server(Final("b", id=third))
    assert [e.text for e in h.outcomes() if isinstance(e, FinalText)] == ["a", "b"]


def test_not_ready_then_ready_does_not_loop_forever() -> None:
    h = Harness(MachineConfig(max_retries=3))
    h.up()
    h.say(1, pcm(0.2))
    for _ in range(10):
        if h.outcomes():
            break
        h.server(Error(ErrorCode.NOT_READY, "model is loading", id=h.wire.starts[-1]))
        h.server(Status("ready"))
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.MODEL_UNAVAILABLE
    assert len(h.wire.starts) == 4  # the first try and three retries


def test_not_ready_waits_for_the_model_and_then_sends_everything() -> None:
    h = Harness()
    h.up()
    audio = pcm(0.4)
    h.say(1, audio)
    h.server(Error(ErrorCode.NOT_READY, "model is loading", id=h.wire.starts[0]))
    assert h.machine.state is ClientState.MODEL_LOADING and len(h.wire.starts) == 1
    h.server(Status("ready"))
    assert bytes(h.wire.audio[h.wire.starts[1]]) == audio
    h.server(Final("x", id=h.wire.starts[1]))
    assert isinstance(h.outcomes()[0], FinalText)


def test_unsupported_language_fails_with_a_reason_the_user_can_act_on() -> None:
    h = Harness(language="Klingon")
    h.up()
    h.say(1, pcm(0.2))
    assert h.wire.starts and h.machine.data_to_send() == []
    h.server(
        Error(ErrorCode.UNSUPPORTED_LANGUAGE, "unknown language 'Klingon'", id=h.wire.starts[0])
    )
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.REFUSED
    assert "language" in failed.message.lower()


def test_a_final_for_an_id_it_never_started_is_nobodys_result() -> None:
    h = Harness()
    h.up()
    h.say(1, pcm(0.2))
    h.server(Final("not yours", id="someone-else"), Final("not yours either", id=""))
    assert h.outcomes() == [] and h.machine.pending == 1
    h.server(Final("mine", id=h.wire.starts[0]))
    assert [e.text for e in h.outcomes() if isinstance(e, FinalText)] == ["mine"]


def test_a_duplicated_final_is_delivered_once() -> None:
    h = Harness()
    h.up()
    h.say(1, pcm(0.2))
    h.server(Final("a", id=h.wire.starts[0]), Final("a", id=h.wire.starts[0]))
    assert len(h.outcomes()) == 1


def test_no_final_fails_at_its_deadline_and_not_before() -> None:
    config = MachineConfig(final_base_s=10.0, final_per_audio_s=2.0)
    h = Harness(config)
    h.up()
    h.say(1, pcm(3.0))
    deadline = h.machine.deadline_of(1)
    assert deadline == pytest.approx(h.now + 10.0 + 6.0)
    assert h.machine.next_deadline() == deadline
    h.advance(15.9)
    assert h.outcomes() == []
    h.advance(0.2)
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.TIMED_OUT
    assert h.machine.wants_reconnect  # its server slot may be stuck


def test_replay_after_a_reconnect_sends_all_audio_and_marks_late_text_stale() -> None:
    h = Harness(MachineConfig(stale_after_s=5.0))
    h.up()
    audio = pcm(1.0)
    h.say(1, audio[: SECOND // 2], end=False)
    h.down()
    assert h.machine.state is ClientState.UNREACHABLE
    for offset in range(SECOND // 2, len(audio), 1024):
        h.machine.audio(1, audio[offset : offset + 1024], h.now)
    h.machine.utterance_ended(1, h.now)
    h.flush()
    h.now += 2.0
    h.up()
    replayed = h.wire.starts[-1]
    assert bytes(h.wire.audio[replayed]) == audio  # from its first sample
    h.say(2, pcm(0.2))
    h.server(Final("soon enough", id=replayed))
    h.now += 10.0
    h.down()
    h.up()
    h.server(Final("late", id=h.wire.starts[-1]))
    soon, late = h.outcomes()
    assert isinstance(soon, FinalText) and not soon.stale
    assert isinstance(late, FinalText) and late.stale  # replayed and 10 s old: not typed


def test_an_undisturbed_slow_final_is_not_stale() -> None:
    h = Harness(MachineConfig(stale_after_s=5.0))
    h.up()
    h.say(1, pcm(0.2))
    h.advance(20.0)
    h.server(Final("slow", id=h.wire.starts[0]))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and not final.stale


def test_cancel_of_the_open_utterance_cancels_it_on_the_server() -> None:
    h = Harness()
    h.up()
    h.say(1, pcm(0.2), end=False)
    h.machine.utterance_cancelled(1, h.now)
    h.flush()
    assert h.wire.cancels == h.wire.starts
    h.server(Final("ghost", id=h.wire.starts[0]))
    assert h.outcomes() == [UtteranceCancelled(1)]


def test_partials_name_the_local_utterance() -> None:
    h = Harness()
    h.up()
    h.say(4, pcm(0.2), end=False)
    h.server(Partial("he", id=h.wire.starts[0], stable="h", unstable="e"))
    assert [e for e in h.events if isinstance(e, PartialText)] == [PartialText(4, "h", "e")]


def test_engine_error_fails_only_that_utterance() -> None:
    h = Harness()
    h.up()
    h.say(1, pcm(0.2))
    h.say(2, pcm(0.2))
    h.server(Error(ErrorCode.ENGINE_ERROR, "boom", id=h.wire.starts[0]))
    h.server(Final("two", id=h.wire.starts[1]))
    failed, final = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.ENGINE_ERROR
    assert isinstance(final, FinalText) and final.utterance_id == 2


def test_shutting_down_replays_after_reconnecting() -> None:
    h = Harness()
    h.up()
    audio = pcm(0.3)
    h.say(1, audio)
    h.server(Error(ErrorCode.SHUTTING_DOWN, "bye", id=h.wire.starts[0]))
    assert h.machine.wants_reconnect and h.outcomes() == []
    h.down()
    h.up()
    assert bytes(h.wire.audio[h.wire.starts[-1]]) == audio
    h.server(Final("ok", id=h.wire.starts[-1]))
    assert isinstance(h.outcomes()[0], FinalText)


def test_frame_too_large_halves_the_frames_and_sends_again() -> None:
    h = Harness()
    h.up(ready(max_audio_frame_bytes=8000))
    audio = pcm(0.5)
    h.say(1, audio, end=False)
    h.server(Error(ErrorCode.FRAME_TOO_LARGE, "too big", id=h.wire.starts[0]))
    assert h.wire.cancels == [h.wire.starts[0]]
    h.machine.utterance_ended(1, h.now)
    h.flush()
    again = h.wire.starts[1]
    assert bytes(h.wire.audio[again]) == audio and max(h.wire.frame_sizes[-4:]) <= 4000


def test_model_failed_fails_what_waits() -> None:
    h = Harness()
    h.up(ready(model_state="loading"))
    h.say(1, pcm(0.2))
    assert h.wire.starts == []  # nothing is sent to a loading model
    h.server(Status("failed", "out of memory"))
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.MODEL_UNAVAILABLE
    assert any(isinstance(e, StateChanged) and "out of memory" in e.detail for e in h.events)


def test_backlog_beyond_the_limit_fails_the_oldest() -> None:
    h = Harness(MachineConfig(max_backlog_bytes=SECOND))
    h.say(1, pcm(0.6))  # no link: everything waits
    h.say(2, pcm(0.6))
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.utterance_id == 1
    assert failed.reason is FailReason.BACKLOG_FULL and h.machine.pending == 1


def test_unreachable_until_the_deadline_fails_with_a_reason() -> None:
    h = Harness(MachineConfig(final_base_s=5.0, final_per_audio_s=0.0))
    h.say(1, pcm(0.2))
    h.advance(5.0)
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and "reached" in failed.message
    assert failed.reason is FailReason.UNREACHABLE


def test_abandon_ends_everything_pending() -> None:
    h = Harness()
    h.up()
    h.say(1, pcm(0.2))
    h.say(2, pcm(0.2), end=False)
    h.machine.abandon(FailReason.DISCONNECTED, "server gone", h.now)
    h.flush()
    assert [type(e) for e in h.outcomes()] == [UtteranceFailed, UtteranceFailed]
    assert h.machine.pending == 0


def test_an_empty_utterance_still_gets_its_outcome() -> None:
    h = Harness()
    h.up()
    h.say(1, b"")
    h.server(Final("", id=h.wire.starts[0]))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and final.text == ""


def test_client_decodes_server_messages_up_to_the_limit_and_no_more() -> None:
    long_final = Final("字" * 100_000, id="a")  # 300 KB of UTF-8: 30 min of speech
    assert decode_server(encode_server(long_final)) == long_final
    frame = '{"type": "status", "model_state": "ready", "pad": "%s"}'
    padding = MAX_SERVER_MESSAGE_BYTES - len(frame % "")
    assert decode_server(frame % ("x" * padding)) == Status("ready")
    with pytest.raises(ProtocolError) as raised:
        decode_server(frame % ("x" * (padding + 1)))
    assert raised.value.code is ErrorCode.FRAME_TOO_LARGE


@pytest.mark.parametrize("code", sorted(ErrorCode, key=lambda c: c.value))
def test_every_error_code_naming_an_utterance_leads_to_an_outcome(code: ErrorCode) -> None:
    """Whatever the server answers, followed by silence, links lost and restored:
    exactly one outcome by the deadline."""
    h = Harness(MachineConfig(final_base_s=30.0, final_per_audio_s=0.0))
    h.up()
    h.say(1, pcm(0.2))
    h.server(Error(code, "scripted", id=h.wire.starts[0]))
    if ERROR_OUTCOMES[code] is ErrorOutcome.FAIL:
        assert len(h.outcomes()) == 1
    for _ in range(3):
        h.advance(10.0)
        if h.machine.wants_reconnect:
            h.down()
            h.up()
    assert len(h.outcomes()) == 1 and h.machine.pending == 0


def test_the_outcome_table_in_the_architecture_doc_is_the_code() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([a-z_]+) \|", doc, flags=re.MULTILINE))
    assert rows == {code.value: outcome.value for code, outcome in ERROR_OUTCOMES.items()}


def test_a_server_limit_shorter_than_advertised_keeps_its_final_and_sends_only_the_rest() -> None:
    h = Harness()
    h.up(ready(max_utterance_seconds=4.0))
    audio = pcm(3.0, 1) + pcm(2.0, 2)
    h.say(1, audio[: 3 * SECOND], end=False, chunk=SECOND // 4)
    first = h.wire.starts[0]
    # The server's real limit was 2 s: it closed the utterance there and decodes it.
    h.wire.open = None
    h.server(Error(ErrorCode.UTTERANCE_TOO_LONG, "reached 2 s", id=first))
    for offset in range(3 * SECOND, len(audio), SECOND // 4):  # the user goes on
        h.machine.audio(1, audio[offset : offset + SECOND // 4], h.now)
    h.machine.utterance_ended(1, h.now)
    h.flush()
    assert h.wire.starts == [first]  # where to go on is known only from its final
    h.server(Final("one", id=first, timings=Timings(audio_ms=2000.0)))
    parts = h.wire.starts[1:]
    # Not decoded twice: the rest from the cut, in parts within the 2 s the server kept.
    assert b"".join(bytes(h.wire.audio[p]) for p in parts) == audio[2 * SECOND :]
    assert [len(h.wire.audio[p]) for p in parts] == [2 * SECOND, SECOND]
    h.server(Final("two", id=parts[0]), Final("three", id=parts[1]))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and final.text == "one two three"


def test_a_too_long_cut_without_timings_is_sent_again_in_parts_half_as_long() -> None:
    h = Harness()
    h.up(ready(max_utterance_seconds=4.0))
    audio = pcm(3.0)
    h.say(1, audio, end=False)
    first = h.wire.starts[0]
    h.wire.open = None
    h.server(Error(ErrorCode.UTTERANCE_TOO_LONG, "reached 2 s", id=first))
    h.machine.utterance_ended(1, h.now)
    h.server(Final("cut short", id=first))  # no timings: the cut cannot be placed
    parts = h.wire.starts[1:]
    assert [len(h.wire.audio[p]) for p in parts] == [2 * SECOND, SECOND]
    assert b"".join(bytes(h.wire.audio[p]) for p in parts) == audio
    h.server(Final("one", id=parts[0]), Final("two", id=parts[1]))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and final.text == "one two"


def test_speech_while_the_model_loads_fails_at_its_deadline_saying_so() -> None:
    h = Harness(MachineConfig(final_base_s=5.0, final_per_audio_s=0.0))
    h.up(ready(model_state="loading"))
    h.say(1, pcm(0.2))
    h.advance(4.9)
    assert h.outcomes() == [] and h.wire.starts == []
    h.advance(0.1)
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.MODEL_UNAVAILABLE
    assert "loading" in failed.message and not h.machine.wants_reconnect
