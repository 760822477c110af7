"""Hold-to-talk debouncing: auto-repeat, release grace, taps, cancel."""

from __future__ import annotations

import pytest

from desktop.hotkey.debounce import (
    Command,
    CommandKind,
    DebounceConfig,
    HoldDebouncer,
    HoldOutcome,
    RawEvent,
    RawKind,
    debounce,
    hold_outcome,
)

P, R, X = RawKind.PRESS, RawKind.RELEASE, RawKind.INTERRUPT
CFG = DebounceConfig(release_grace_s=0.05, min_hold_s=0.25)


def ev(*items: tuple[RawKind, float]) -> list[RawEvent]:
    return [RawEvent(k, t) for k, t in items]


def kinds(commands: list[Command]) -> list[str]:
    return [c.kind.value for c in commands]


def test_simple_hold() -> None:
    out = debounce(ev((P, 1.0), (R, 2.0)), CFG, now=3.0)
    assert out == [Command(CommandKind.PRESS, 1.0), Command(CommandKind.RELEASE, 2.0, 1.0)]


def test_press_is_immediate_and_release_waits_for_grace() -> None:
    d = HoldDebouncer(CFG)
    assert kinds(d.press(1.0)) == ["press"]
    assert d.release(2.0) == []
    assert d.deadline() == pytest.approx(2.05)
    assert d.poll(2.04) == []
    out = d.poll(2.05)
    assert kinds(out) == ["release"] and out[0].t == 2.0  # time of the real release
    assert d.deadline() is None and not d.is_held


def test_windows_autorepeat_presses_are_ignored() -> None:
    events = ev((P, 0.0), *[(P, 0.5 + 0.033 * i) for i in range(30)], (R, 1.6))
    assert kinds(debounce(events, CFG, now=2.0)) == ["press", "release"]


def test_x11_autorepeat_release_press_pairs_are_still_held() -> None:
    pairs: list[tuple[RawKind, float]] = []
    for i in range(20):
        t = 0.66 + 0.04 * i
        pairs += [(R, t), (P, t)]  # same timestamp, as X11 sends them
    out = debounce(ev((P, 0.0), *pairs, (R, 2.0)), CFG, now=2.1)
    assert kinds(out) == ["press", "release"]
    assert out[1].held_s == pytest.approx(2.0)


def test_bounce_within_grace_is_one_hold_and_after_grace_two() -> None:
    assert kinds(debounce(ev((P, 0.0), (R, 0.5), (P, 0.53), (R, 1.0)), CFG, 2.0)) == [
        "press",
        "release",
    ]
    # a press after the grace starts a new hold; the first one is finished first
    out = debounce(ev((P, 0.0), (R, 0.5), (P, 0.6), (R, 1.0)), CFG, 2.0)
    assert kinds(out) == ["press", "release", "press", "release"]
    assert [c.t for c in out] == [0.0, 0.5, 0.6, 1.0]


def test_short_press_is_a_tap() -> None:
    out = debounce(ev((P, 0.0), (R, 0.1)), CFG, now=1.0)
    assert kinds(out) == ["press", "tap"] and out[1].held_s == pytest.approx(0.1)
    # exactly min_hold counts as a hold
    assert kinds(debounce(ev((P, 0.0), (R, 0.25)), CFG, now=1.0)) == ["press", "release"]


def test_pending_release_without_now() -> None:
    assert kinds(debounce(ev((P, 0.0), (R, 1.0)), CFG)) == ["press"]


def test_stray_release_and_double_release_are_ignored() -> None:
    assert debounce(ev((R, 0.0)), CFG, now=1.0) == []
    assert kinds(debounce(ev((P, 0.0), (R, 1.0), (R, 1.01)), CFG, 2.0)) == ["press", "release"]


def test_interrupt_cancels_once_and_swallows_the_release() -> None:
    out = debounce(ev((P, 0.0), (X, 0.3), (X, 0.35), (R, 0.8)), CFG, now=2.0)
    assert kinds(out) == ["press", "cancel"] and out[1].held_s == pytest.approx(0.3)
    # auto-repeat during a cancelled hold does not restart it
    out = debounce(ev((P, 0.0), (X, 0.3), (R, 0.7), (P, 0.7), (R, 0.9)), CFG, now=2.0)
    assert kinds(out) == ["press", "cancel"]
    # interrupt when idle does nothing; the next hold works
    assert kinds(debounce(ev((X, 0.0), (P, 1.0), (R, 2.0)), CFG, 3.0)) == ["press", "release"]


def test_zero_grace_releases_at_once() -> None:
    d = HoldDebouncer(DebounceConfig(release_grace_s=0.0, min_hold_s=0.0))
    d.press(0.0)
    assert kinds(d.release(0.01)) == ["release"]


def test_every_press_gets_exactly_one_end() -> None:
    import random

    rng = random.Random(5)
    for _ in range(200):
        t, events = 0.0, []
        for _ in range(rng.randint(1, 30)):
            t += rng.choice([0.0, 0.001, 0.02, 0.04, 0.1, 0.3, 1.0])
            events.append(RawEvent(rng.choice([P, P, R, R, X]), t))
        events.append(RawEvent(R, t + 0.5))  # the key ends up released
        out = debounce(events, CFG, now=t + 1.0)
        ends = ("release", "tap", "cancel")
        open_ = 0
        for c in out:
            if c.kind is CommandKind.PRESS:
                assert open_ == 0
                open_ = 1
            else:
                assert c.kind.value in ends and open_ == 1
                open_ = 0
        assert open_ == 0


def test_bad_config() -> None:
    with pytest.raises(ValueError):
        DebounceConfig(release_grace_s=-1)


# ---------------------------------------------------------------- what a hold keeps


def test_a_short_press_with_speech_in_it_is_kept() -> None:
    """A 150 ms "yes": the debouncer calls it a TAP (shorter than min_hold_s), and the
    VAD heard speech in it, so its audio is sent."""
    press, tap = debounce(ev((P, 1.0), (R, 1.15)), CFG, now=2.0)
    assert press.kind is CommandKind.PRESS
    assert tap.kind is CommandKind.TAP and tap.held_s == pytest.approx(0.15)
    assert hold_outcome(tap.kind, speech_heard=True) is HoldOutcome.KEEP


def test_a_short_press_without_speech_is_discarded() -> None:
    assert hold_outcome(CommandKind.TAP, speech_heard=False) is HoldOutcome.DISCARD


def test_a_release_keeps_and_a_cancel_discards_whatever_was_heard() -> None:
    for heard in (True, False):
        assert hold_outcome(CommandKind.RELEASE, heard) is HoldOutcome.KEEP
        assert hold_outcome(CommandKind.CANCEL, heard) is HoldOutcome.DISCARD


def test_a_press_does_not_end_a_hold() -> None:
    with pytest.raises(ValueError):
        hold_outcome(CommandKind.PRESS, speech_heard=True)
