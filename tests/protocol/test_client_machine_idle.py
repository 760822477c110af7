"""The calm state and the busy backoff (pure lane, fake clock).

A server closes idle links (4000) and displaces the longest-idle one at its connection
limit (4001): the machine then asks for no link until an utterance starts or the
refresh interval passes. ``too_many_sessions`` while this client holds no slot is tried
again with spaced retries until the utterance's deadline, not at once."""

from __future__ import annotations

import pytest

from protocol.client_events import (
    ClientState,
    CloseCode,
    FailReason,
    FinalText,
    StateChanged,
    UtteranceFailed,
)
from protocol.client_machine import MachineConfig
from protocol.messages import Error, ErrorCode, Final
from tests.protocol.test_client_machine import Harness, pcm
from tests.protocol.test_client_machine_start_ack import ack_ready


def states(h: Harness) -> list[ClientState]:
    return [e.state for e in h.events if isinstance(e, StateChanged)]


@pytest.mark.parametrize("code", [CloseCode.IDLE_TIMEOUT, CloseCode.DISPLACED])
def test_an_idle_close_is_calm_until_an_utterance_starts(code: CloseCode) -> None:
    h = Harness(MachineConfig(calm_refresh_s=900.0))
    h.up()
    h.machine.link_down("idle", h.now, int(code))
    h.flush()
    assert h.machine.state is ClientState.IDLE_DISCONNECTED
    assert not h.machine.wants_link(h.now)
    h.advance(899.0)
    assert not h.machine.wants_link(h.now)  # no reconnect for nothing
    h.say(1, pcm(0.5), end=False)
    assert h.machine.wants_link(h.now)  # the utterance connects; its audio waits here
    h.machine.connecting(h.now)
    h.up()
    h.machine.utterance_ended(1, h.now)
    h.flush()
    (wire_id,) = h.wire.starts
    assert bytes(h.wire.audio[wire_id]) == pcm(0.5)  # all of it, spoken while unconnected
    h.server(Final("hello", id=wire_id))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and final.text == "hello" and not final.stale


def test_speaking_out_of_the_calm_state_connects_without_saying_connecting() -> None:
    """The user speaks: the link opens meanwhile, and the state stays calm (the tray
    shows the user speaking) until the link is up; a failed attempt is told as such."""
    h = Harness()
    h.up()
    h.machine.link_down("idle", h.now, int(CloseCode.IDLE_TIMEOUT))
    h.flush()
    h.events.clear()
    h.say(1, pcm(0.5), end=False)
    h.machine.connecting(h.now)
    h.flush()
    assert h.machine.state is ClientState.IDLE_DISCONNECTED and states(h) == []
    assert h.machine.wants_link(h.now) and h.machine.calm_until() is None
    h.up()
    assert states(h) == [ClientState.READY]
    # the next calm spell: this time the server cannot be reached
    h.machine.utterance_ended(1, h.now)
    h.flush()
    h.server(Final("hello", id=h.wire.starts[0]))
    h.machine.link_down("idle", h.now, int(CloseCode.IDLE_TIMEOUT))
    h.say(2, pcm(0.5), end=False)
    h.machine.connecting(h.now)
    h.machine.link_failed(ClientState.UNREACHABLE, "refused", h.now)
    h.flush()
    assert states(h)[-2:] == [ClientState.IDLE_DISCONNECTED, ClientState.UNREACHABLE]
    h.machine.connecting(h.now)  # the retry is an ordinary one
    h.flush()
    assert states(h)[-1] is ClientState.CONNECTING


def test_the_calm_state_refreshes_after_its_interval() -> None:
    h = Harness(MachineConfig(calm_refresh_s=600.0))
    h.up()
    h.machine.link_down("idle", h.now, int(CloseCode.IDLE_TIMEOUT))
    assert h.machine.calm_until() == h.now + 600.0
    h.advance(599.9)
    assert not h.machine.wants_link(h.now)
    h.advance(0.1)
    assert h.machine.wants_link(h.now)
    h.machine.connecting(h.now)
    assert h.machine.calm_until() is None
    assert h.machine.state is ClientState.CONNECTING, "no one is speaking: it says so"


def test_other_closes_and_closes_with_work_pending_reconnect_at_once() -> None:
    h = Harness()
    h.up()
    h.machine.link_down("lost", h.now, 1006)
    assert h.machine.state is ClientState.UNREACHABLE and h.machine.wants_link(h.now)
    h.up()
    h.say(1, pcm(0.3))  # pending: an idle close must not park it
    h.machine.link_down("idle", h.now, int(CloseCode.IDLE_TIMEOUT))
    h.flush()
    assert h.machine.state is ClientState.UNREACHABLE and h.machine.wants_link(h.now)
    assert states(h)[-1] is ClientState.UNREACHABLE


def test_leave_calm_asks_for_a_link_now() -> None:
    h = Harness()
    h.up()
    h.machine.link_down("displaced", h.now, int(CloseCode.DISPLACED))
    assert not h.machine.wants_link(h.now)
    h.machine.leave_calm(h.now)  # new settings: try them now
    assert h.machine.wants_link(h.now)


def refuse_busy(h: Harness) -> None:
    h.wire.open = None  # the server refused it: nothing is open there
    h.server(Error(ErrorCode.TOO_MANY_SESSIONS, "full", id=h.wire.starts[-1]))


def test_busy_refusals_while_holding_no_slot_are_spaced_and_succeed_when_a_slot_frees() -> None:
    config = MachineConfig(max_retries=2, busy_retry_first_s=0.25, busy_retry_max_s=2.0)
    h = Harness(config)
    h.up()
    h.say(1, pcm(0.5, 4))
    gaps = []
    for _ in range(6):  # more refusals than max_retries: they do not use it up
        refuse_busy(h)
        before = len(h.wire.starts)
        due = h.machine.next_deadline()  # the driver's timer wakes it then
        assert due is not None
        gaps.append(round(due - h.now, 3))
        h.advance(due - h.now - 0.01)
        assert len(h.wire.starts) == before  # not a moment early
        h.advance(0.01)
        assert len(h.wire.starts) == before + 1
    assert gaps == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]  # doubling, capped
    last = h.wire.starts[-1]
    assert bytes(h.wire.audio[last]) == pcm(0.5, 4)
    h.server(Final("at last", id=last))
    (final,) = h.outcomes()
    assert isinstance(final, FinalText) and final.text == "at last"


def test_busy_refusals_until_the_deadline_fail_it_as_timed_out_by_then() -> None:
    config = MachineConfig(final_base_s=10.0, final_per_audio_s=0.0, busy_retry_max_s=1.0)
    h = Harness(config)
    h.up(ack_ready())  # the stop waits for "started", which never comes
    h.say(1, pcm(0.5))
    deadline = h.machine.deadline_of(1)
    assert deadline is not None
    while not h.outcomes():
        assert h.now <= deadline
        if h.wire.open is not None:
            refuse_busy(h)
        h.advance(0.05)
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.reason is FailReason.TIMED_OUT
    assert "too_many_sessions" in failed.message and not failed.stop_sent
    assert deadline <= h.now < deadline + 0.1
    assert 8 <= len(h.wire.starts) <= 14  # about one a second, not hundreds
    assert not h.machine.wants_reconnect  # the link is fine; the server was full


def test_the_backoff_restarts_after_a_start_is_accepted() -> None:
    h = Harness(MachineConfig(busy_retry_first_s=0.25))
    h.up()
    h.say(1, pcm(0.2))
    refuse_busy(h)
    h.advance(0.25)
    refuse_busy(h)
    h.advance(0.5)
    h.server(Final("one", id=h.wire.starts[-1]))
    h.say(2, pcm(0.2))
    refuse_busy(h)
    before = len(h.wire.starts)
    h.advance(0.25)  # the first wait again, not 1 s
    assert len(h.wire.starts) == before + 1


def test_a_failure_after_its_stop_says_so() -> None:
    h = Harness(MachineConfig(final_base_s=1.0, final_per_audio_s=0.0))
    h.up()
    h.say(1, pcm(0.2))
    assert h.wire.stops  # the stop went out; no final comes
    h.advance(1.0)
    (failed,) = h.outcomes()
    assert isinstance(failed, UtteranceFailed) and failed.stop_sent
