"""The server ends what the client sent (pure lane, fake clock): a server shutting down
still sends the finals of the utterances already stopped, so the link is kept for them
(bounded) and only the rest is replayed on the next link; a server whose audio budget
is full ends the open utterance early and decodes what it kept, so its final counts and
only the audio after the cut is sent again, as a new part. The fatal ``server_busy`` of
a refused connection (no utterance named) still gives the link up."""

from __future__ import annotations

from protocol.client_events import FailReason, FinalText, UtteranceFailed
from protocol.client_machine import MachineConfig
from protocol.messages import Error, ErrorCode, Final, Timings
from tests.protocol.test_client_machine import SECOND, Harness, pcm, ready


def busy(wire_id: str) -> Error:
    """What our server sends when its audio budget has no room for a frame."""
    return Error(ErrorCode.SERVER_BUSY, "finished here, start a new one", id=wire_id)


def cut_by_server(h: Harness, wire_id: str) -> None:
    """``server_busy`` for ``wire_id``: the server closed it (later frames are not its)."""
    if h.wire.open == wire_id:
        h.wire.open = None
    h.server(busy(wire_id))


def final_of(text: str, wire_id: str, audio_bytes: int) -> Final:
    """A final covering ``audio_bytes`` of audio, its length rounded as the codec does."""
    audio_ms = round(audio_bytes / SECOND * 1000.0, 1)
    return Final(text, id=wire_id, timings=Timings(audio_ms=audio_ms))


def texts(h: Harness) -> list[tuple[int, str]]:
    return [(e.utterance_id, e.text) for e in h.outcomes() if isinstance(e, FinalText)]


# ---------------------------------------------------------------- shutdown


def test_a_link_the_server_closes_is_kept_until_the_finals_due_on_it_are_in() -> None:
    h = Harness()
    h.up()
    first, second = pcm(0.5, 1), pcm(0.4, 2)
    h.say(1, first)  # stopped: decoding on the server
    h.say(2, second, end=False)  # open
    stopped, open_one = h.wire.starts
    h.server(Error(ErrorCode.SHUTTING_DOWN, "shutting down; send it again", id=open_one))
    assert h.machine.draining and not h.machine.wants_reconnect
    h.say(3, pcm(0.3, 3))  # spoken meanwhile: not sent to a server that is leaving
    h.machine.utterance_ended(2, h.now)
    h.flush()
    assert h.wire.starts == [stopped, open_one] and h.wire.cancels == []
    h.server(Final("one", id=stopped))
    assert texts(h) == [(1, "one")]
    assert h.machine.wants_reconnect  # nothing due any more: the client closes it
    h.down()
    h.up()
    # Only what got no final is sent again, in order.
    assert [bytes(h.wire.audio[w]) for w in h.wire.starts[2:]] == [second, pcm(0.3, 3)]
    h.server(Final("two", id=h.wire.starts[2]), Final("three", id=h.wire.starts[3]))
    assert texts(h) == [(1, "one"), (2, "two"), (3, "three")]


def test_a_draining_link_is_closed_at_the_drain_deadline_and_what_it_owed_is_replayed() -> None:
    config = MachineConfig(final_base_s=10.0, final_per_audio_s=40.0)
    h = Harness(config)
    h.up()
    first = pcm(0.5)
    h.say(1, first)
    h.say(2, pcm(0.2), end=False)
    h.server(Error(ErrorCode.SHUTTING_DOWN, "bye", id=h.wire.starts[1]))
    drained_at = h.now
    assert h.machine.next_deadline() == drained_at + 10.0  # before any utterance's
    h.advance(9.9)
    assert not h.machine.wants_reconnect
    h.advance(0.1)
    assert h.machine.wants_reconnect and h.outcomes() == []  # closed, nothing failed
    h.down()
    h.up()
    assert bytes(h.wire.audio[h.wire.starts[2]]) == first  # owed on the old link
    h.server(Final("one", id=h.wire.starts[2]))
    assert texts(h) == [(1, "one")]


def test_a_final_the_draining_server_never_sends_fails_by_its_deadline() -> None:
    h = Harness(MachineConfig(final_base_s=5.0, final_per_audio_s=0.0))
    h.up()
    h.say(1, pcm(0.2))
    h.server(Error(ErrorCode.SHUTTING_DOWN, "bye", id=""))  # a start refused, say
    assert h.machine.draining and not h.machine.wants_reconnect
    h.advance(5.0)
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.TIMED_OUT
    assert h.machine.wants_reconnect


def test_a_cancelled_utterance_holds_no_draining_link() -> None:
    h = Harness()
    h.up()
    h.say(1, pcm(0.2))
    h.say(2, pcm(0.2), end=False)
    h.server(Error(ErrorCode.SHUTTING_DOWN, "bye", id=h.wire.starts[1]))
    assert not h.machine.wants_reconnect
    h.machine.utterance_cancelled(1, h.now)  # nobody waits for its final now
    assert h.machine.wants_reconnect


def test_a_fatal_server_busy_at_the_connection_limit_gives_the_link_up() -> None:
    h = Harness()
    h.up()
    audio = pcm(0.3)
    h.say(1, audio, end=False)
    h.server(Error(ErrorCode.SERVER_BUSY, "all connections dictating", fatal=True))
    assert h.machine.wants_reconnect and h.outcomes() == []
    h.down()
    h.up()
    h.machine.utterance_ended(1, h.now)
    h.flush()
    assert bytes(h.wire.audio[h.wire.starts[-1]]) == audio
    h.server(Final("ok", id=h.wire.starts[-1]))
    assert texts(h) == [(1, "ok")]


# ---------------------------------------------------------------- audio budget


def test_server_busy_keeps_the_final_and_sends_only_the_rest() -> None:
    h = Harness()
    h.up()
    audio = pcm(1.0, 1) + pcm(1.0, 2)
    h.say(1, audio[:20_000], end=False, chunk=1000)  # 1000-byte frames, 31.25 ms each
    cut = h.wire.starts[0]
    cut_by_server(h, cut)  # the 8th frame did not fit: 7 kept
    assert not h.machine.wants_reconnect and h.wire.cancels == []
    for offset in range(20_000, len(audio), 1000):  # the user goes on, then stops
        h.machine.audio(1, audio[offset : offset + 1000], h.now)
    h.machine.utterance_ended(1, h.now)
    h.flush()
    assert h.wire.starts == [cut]  # where to go on is known only from its final
    h.server(final_of("alpha", cut, 7000))  # 218.75 ms, sent as 218.8
    rest = h.wire.starts[1]
    assert bytes(h.wire.audio[rest]) == audio[7000:]  # nothing lost, nothing twice
    h.server(final_of("bravo", rest, len(audio) - 7000))
    assert texts(h) == [(1, "alpha bravo")]
    assert not h.machine.wants_reconnect and h.machine.pending == 0


def test_a_stop_that_crossed_the_cut_does_not_lose_the_final() -> None:
    h = Harness()
    h.up()
    audio = pcm(0.5)
    h.say(1, audio, chunk=1000)  # all sent, and its stop
    cut = h.wire.starts[0]
    h.server(
        busy(cut),
        Error(ErrorCode.NO_UTTERANCE, "no utterance to stop", id=cut),  # our stop, too late
        final_of("alpha", cut, 4000),
    )
    (rest,) = h.wire.starts[1:]
    assert bytes(h.wire.audio[rest]) == audio[4000:]
    h.server(final_of("bravo", rest, len(audio) - 4000))
    assert texts(h) == [(1, "alpha bravo")]


def test_a_later_utterance_waits_until_the_cut_one_goes_on() -> None:
    h = Harness()
    h.up()
    h.say(1, pcm(0.5, 1), end=False, chunk=1000)
    cut_by_server(h, h.wire.starts[0])
    h.machine.utterance_ended(1, h.now)
    h.say(2, pcm(0.2, 2))
    assert len(h.wire.starts) == 1  # its text must not overtake the first one's rest
    h.server(final_of("alpha", h.wire.starts[0], 3000))
    rest, second = h.wire.starts[1:]  # the rest first, then the next utterance
    assert bytes(h.wire.audio[rest]) == pcm(0.5, 1)[3000:]
    assert bytes(h.wire.audio[second]) == pcm(0.2, 2)


def test_a_cut_that_kept_nothing_is_tried_again_after_a_growing_wait() -> None:
    h = Harness()
    h.up()
    audio = pcm(0.5)
    h.say(1, audio, chunk=1000)
    for wait in (0.25, 0.5, 1.0):  # the budget stays full: nothing of it gets in
        wire_id = h.wire.starts[-1]
        h.server(busy(wire_id), final_of("", wire_id, 0))
        assert h.wire.starts[-1] == wire_id  # not at once
        assert h.machine.next_deadline() == h.now + wait
        h.advance(wait)
        assert h.wire.starts[-1] != wire_id
    last = h.wire.starts[-1]
    assert bytes(h.wire.audio[last]) == audio  # from the start: nothing was kept
    h.server(final_of("alpha", last, len(audio)))
    assert texts(h) == [(1, "alpha")]


def test_a_budget_that_never_frees_fails_the_utterance_by_its_deadline() -> None:
    h = Harness(MachineConfig(final_base_s=8.0, final_per_audio_s=0.0))
    h.up()
    h.say(1, pcm(0.3), chunk=1000)
    deadline = h.machine.deadline_of(1)
    assert deadline is not None
    while h.machine.pending:
        wire_id = h.wire.starts[-1]
        h.server(busy(wire_id), final_of("", wire_id, 0))
        due = h.machine.next_deadline()
        assert due is not None and due <= deadline
        h.advance(due - h.now)
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.TIMED_OUT
    assert "server_busy" in failed.message and h.now == deadline


def test_a_final_that_cannot_be_placed_is_dropped_and_the_audio_sent_again() -> None:
    h = Harness()
    h.up(ready())
    audio = pcm(0.4)
    h.say(1, audio, chunk=1000)
    cut = h.wire.starts[0]
    h.server(busy(cut), Final("alpha", id=cut))  # no timings: how much did it keep?
    h.advance(0.25)
    again = h.wire.starts[1]
    assert bytes(h.wire.audio[again]) == audio  # all of it: no word lost
    h.server(final_of("alpha bravo", again, len(audio)))
    assert texts(h) == [(1, "alpha bravo")]  # not "alpha alpha bravo"
