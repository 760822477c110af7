"""Admission with ``start-ack`` (pure lane, fake clock): against a server that answers
accepted starts with ``started``, the machine holds an utterance's audio and stop until
its ``started``; a refusal before it loses nothing; a ``started`` that never comes ends
at the utterance's deadline. Without the capability nothing waits."""

from __future__ import annotations

from protocol.client_events import FailReason, FinalText, UtteranceFailed
from protocol.client_machine import MachineConfig
from protocol.limits import Limits
from protocol.messages import START_ACK, Error, ErrorCode, Final, Partial, Ready, Started
from tests.protocol.test_client_machine import Harness, pcm


def ack_ready(**limits: float) -> Ready:
    return Ready(
        server="scripted",
        capabilities=("hello", START_ACK),
        limits={**Limits().to_json(), **limits},
    )


def test_audio_and_stop_wait_for_started_then_follow_at_once() -> None:
    h = Harness()
    h.up(ack_ready())
    audio = pcm(1.0)
    h.say(1, audio)
    (wire_id,) = h.wire.starts
    assert h.wire.audio[wire_id] == b"" and h.wire.stops == []  # nothing before started
    assert not h.machine.stop_written(1)
    h.server(Partial("x", id=wire_id))  # not an acceptance: still nothing
    assert h.wire.audio[wire_id] == b""
    h.server(Started(wire_id))
    assert bytes(h.wire.audio[wire_id]) == audio and h.wire.stops == [wire_id]
    assert h.machine.stop_written(1)
    h.server(Started(wire_id))  # a duplicate changes nothing
    assert bytes(h.wire.audio[wire_id]) == audio and h.wire.stops == [wire_id]
    h.server(Final("hello", id=wire_id))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and final.text == "hello"


def test_audio_spoken_after_started_streams_as_it_comes() -> None:
    h = Harness()
    h.up(ack_ready())
    h.say(1, pcm(0.5), end=False)
    (wire_id,) = h.wire.starts
    h.server(Started(wire_id))
    assert len(h.wire.audio[wire_id]) == len(pcm(0.5))
    h.machine.audio(1, pcm(0.25), h.now)
    h.flush()
    assert len(h.wire.audio[wire_id]) == len(pcm(0.75)) and h.wire.stops == []


def test_a_start_refused_before_started_is_sent_again_with_all_its_audio() -> None:
    h = Harness()
    h.up(ack_ready())
    audio = pcm(1.0, 3)
    h.say(1, audio)
    first = h.wire.starts[0]
    h.wire.open = None  # the server refuses the start: nothing is open there
    h.server(Error(ErrorCode.TOO_MANY_SESSIONS, "full", id=first))
    assert h.wire.audio[first] == b""  # the server was given nothing to throw away
    assert h.wire.starts == [first]  # we hold no slot: the retry waits (backoff)
    h.advance(MachineConfig().busy_retry_first_s)
    second = h.wire.starts[-1]
    assert second != first and h.wire.audio[second] == b""
    h.server(Started(second))
    assert bytes(h.wire.audio[second]) == audio
    h.server(Final("all of it", id=second))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and final.text == "all of it"


def test_a_started_for_an_utterance_given_up_is_ignored() -> None:
    h = Harness()
    h.up(ack_ready())
    h.say(1, pcm(0.5), end=False)
    old = h.wire.starts[0]
    h.machine.utterance_cancelled(1, h.now)
    h.flush()
    assert h.wire.cancels == [old]
    h.say(2, pcm(0.5))
    new = h.wire.starts[-1]
    h.server(Started(old))  # late answer to the cancelled start
    assert h.wire.audio[new] == b"" and h.wire.stops == []
    h.server(Started(new))
    assert len(h.wire.audio[new]) == len(pcm(0.5))


def test_a_started_that_never_comes_ends_at_the_utterances_deadline() -> None:
    config = MachineConfig(final_base_s=5.0, final_per_audio_s=1.0)
    h = Harness(config)
    h.up(ack_ready())
    h.say(1, pcm(1.0))
    deadline = h.machine.deadline_of(1)
    assert deadline == h.now + 6.0
    h.advance(5.9)
    assert h.outcomes() == []
    h.advance(0.2)
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.TIMED_OUT
    assert h.machine.wants_reconnect  # a server that never answers: try a new link


def test_without_the_capability_audio_follows_the_start_at_once() -> None:
    h = Harness()
    h.up(Ready(server="old", limits=Limits().to_json()))
    audio = pcm(0.5)
    h.say(1, audio)
    (wire_id,) = h.wire.starts
    assert bytes(h.wire.audio[wire_id]) == audio and h.wire.stops == [wire_id]


def test_a_second_ready_without_the_capability_releases_the_waiting_audio() -> None:
    h = Harness()
    h.up(ack_ready())
    h.say(1, pcm(0.5))
    (wire_id,) = h.wire.starts
    h.server(Ready(server="downgraded", limits=Limits().to_json()))
    assert len(h.wire.audio[wire_id]) == len(pcm(0.5)) and h.wire.stops == [wire_id]
