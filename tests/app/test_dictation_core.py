"""The dictation core, pure: a fake clock, a fake microphone, a typing executor the test
runs by hand, and the client's outcome events. No Qt, no threads, no sleeps (the last
test starts one fresh interpreter to see what the core's modules import)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.audio.segmenter import (
    DropReason,
    EndReason,
    Mode,
    UtteranceDropped,
    UtteranceEnded,
    UtteranceStarted,
)
from desktop.dictation import (
    WITHHELD_TEXT,
    AudioFailed,
    DictationCore,
    FinalRecorded,
    FinalTyper,
    Notice,
    Problem,
    RecordingChanged,
    Retype,
    SessionLockChanged,
    SettingsChanged,
    Stage,
    StageChanged,
    Start,
    SwitchHandsFree,
    Talk,
    TalkKind,
    Tick,
    TypingDone,
    TypingJob,
    TypingOutcome,
    TypingStatus,
    Withheld,
    type_text,
)
from desktop.output.base import OutputMethod
from desktop.output.typist import TypingResult
from protocol.client_events import (
    FailReason,
    FinalText,
    UtteranceCancelled,
    UtteranceFailed,
)
from protocol.client_timeline import UtteranceTimeline

TYPED = TypingOutcome(TypingStatus.TYPED)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeMicrophone:
    fail_with: str | None = None
    calls: list[str] = field(default_factory=list)
    opened_in: Mode | None = None

    @property
    def is_open(self) -> bool:
        return self.opened_in is not None

    def open(self, mode: Mode) -> str | None:
        self.calls.append(f"open {mode.value}")
        if self.fail_with is None:
            self.opened_in = mode
        return self.fail_with

    def close(self) -> None:
        self.calls.append("close")
        self.opened_in = None

    def set_mode(self, mode: Mode) -> None:
        self.calls.append(f"mode {mode.value}")

    def press(self) -> None:
        self.calls.append("press")

    def release(self) -> None:
        self.calls.append("release")

    def tap(self) -> None:
        self.calls.append("tap")

    def cancel(self) -> None:
        self.calls.append("cancel")


class ManualExecutor:
    """Keeps submitted jobs; the test (or :meth:`run_next`) finishes them."""

    def __init__(self) -> None:
        self.submitted: list[TypingJob] = []
        self.core: DictationCore | None = None

    def submit(self, job: TypingJob) -> None:
        self.submitted.append(job)

    def run_next(self, typer: FinalTyper) -> None:
        """Type the newest submitted job with ``typer``, then report it, as the Qt
        adapter's timer does."""
        assert self.core is not None
        job = self.submitted[-1]
        self.core.post(TypingDone(job, type_text(typer, job.text, job.modifiers_held)))


@dataclass
class Rig:
    core: DictationCore
    mic: FakeMicrophone
    executor: ManualExecutor
    clock: FakeClock
    notices: list[Notice]

    @property
    def stages(self) -> list[Stage]:
        return [n.stage for n in self.notices if isinstance(n, StageChanged)]

    @property
    def problems(self) -> list[str]:
        return [n.text for n in self.notices if isinstance(n, Problem)]

    @property
    def recorded(self) -> list[str]:
        return [n.entry.text for n in self.notices if isinstance(n, FinalRecorded)]

    def finish_typing(self, outcome: TypingOutcome = TYPED) -> None:
        job = self.core.typing_now
        assert job is not None, "nothing is being typed"
        self.core.post(TypingDone(job, outcome))


def rig(mode: Mode = Mode.PUSH_TO_TALK, mic: FakeMicrophone | None = None) -> Rig:
    clock, notices = FakeClock(), []
    microphone = mic or FakeMicrophone()
    executor = ManualExecutor()
    core = DictationCore(
        microphone, executor, notices.append, mode=mode, clock=clock, wall_clock=lambda: 1e9
    )
    executor.core = core
    return Rig(core, microphone, executor, clock, notices)


def started(uid: int) -> UtteranceStarted:
    return UtteranceStarted(uid, 0, 0, Mode.PUSH_TO_TALK)


def ended(
    uid: int, at: float | None = None, reason: EndReason = EndReason.RELEASED
) -> UtteranceEnded:
    return UtteranceEnded(uid, reason, 0, 16_000, 16_000, 16_000, detected_at=at)


def final(uid: int, text: str, stale: bool = False) -> FinalText:
    return FinalText(uid, text, None, UtteranceTimeline(uid), stale=stale)


def failed(uid: int) -> UtteranceFailed:
    return UtteranceFailed(uid, "no", FailReason.ENGINE_ERROR)


def spoken(r: Rig, *uids: int) -> None:
    """Utterances that were spoken and ended, waiting for their outcomes."""
    for uid in uids:
        r.core.post(started(uid))
        r.core.post(ended(uid, at=r.clock.now))


# ---------------------------------------------------------------- typing is never re-entered


def test_a_final_arriving_while_typing_is_queued_and_typed_after_in_order() -> None:
    r = rig()
    spoken(r, 1, 2)
    r.core.post(final(1, "first"))
    assert [j.text for j in r.executor.submitted] == ["first"]
    r.core.post(final(2, "second"))  # arrives while "first" is being typed
    assert [j.text for j in r.executor.submitted] == ["first"], "one job at a time"
    assert [j.text for j in r.core.typing_queue] == ["second"]
    assert r.core.facts.stage is Stage.TYPING
    r.finish_typing()
    assert [j.text for j in r.executor.submitted] == ["first", "second"]
    assert [e.text for e in r.core.history] == ["first"]
    r.finish_typing()
    assert [(e.text, e.typed) for e in r.core.history] == [("first", True), ("second", True)]
    assert r.core.facts.stage is Stage.IDLE


def test_a_nested_event_loop_delivering_a_final_cannot_start_a_second_typing() -> None:
    """The Qt clipboard spins a nested event loop while it waits for the paste; a final
    delivered there is posted to the core in the middle of typing. It waits its turn."""
    r = rig()
    spoken(r, 1, 2)
    depth, typed = [0], []

    class NestingTyper:
        def type_final(self, text: str) -> None:
            depth[0] += 1
            assert depth[0] == 1, "typing re-entered"
            if text == "first":
                r.core.post(final(2, "second"))  # the nested loop delivers the next final
                assert len(r.executor.submitted) == 1
            typed.append(text)
            depth[0] -= 1

    r.core.post(final(1, "first"))
    r.executor.run_next(NestingTyper())
    assert [j.text for j in r.executor.submitted] == ["first", "second"]
    r.executor.run_next(NestingTyper())
    assert typed == ["first", "second"]
    assert [(e.text, e.typed) for e in r.core.history] == [("first", True), ("second", True)]


def test_an_executor_that_types_inside_submit_still_finishes_jobs_in_order() -> None:
    """Even an executor that breaks the rule and reports inside ``submit`` cannot nest
    two jobs: its report is queued behind the command that submitted the job."""
    clock, notices, typed = FakeClock(), [], []
    holder: list[DictationCore] = []

    class Immediate:
        def submit(self, job: TypingJob) -> None:
            typed.append(job.text)
            holder[0].post(TypingDone(job, TYPED))
            assert holder[0].typing_now is job, "the report waits in the queue"

    core = DictationCore(
        FakeMicrophone(),
        Immediate(),
        notices.append,
        mode=Mode.PUSH_TO_TALK,
        clock=clock,
        wall_clock=lambda: 0.0,
    )
    holder.append(core)
    for uid, text in ((1, "a"), (2, "b"), (3, "c")):
        core.post(final(uid, text))
    assert typed == ["a", "b", "c"]
    assert [e.text for e in core.history] == ["a", "b", "c"]
    assert core.typing_now is None and core.facts.stage is Stage.IDLE


def test_a_result_for_a_job_that_is_not_running_is_ignored() -> None:
    r = rig()
    r.core.post(final(1, "one"))
    stray = TypingJob(99, "stray", 99)
    r.core.post(TypingDone(stray, TYPED))
    assert r.core.typing_now is not None and r.core.history == []


# ---------------------------------------------------------------- history order


def test_a_later_final_waits_for_the_earlier_utterance() -> None:
    r = rig()
    spoken(r, 1, 2)
    r.core.post(final(2, "second"))  # the shorter utterance decoded first
    assert r.executor.submitted == [] and r.core.facts.stage is Stage.FINALIZING
    r.core.post(final(1, "first"))
    r.finish_typing()
    r.finish_typing()
    assert [e.text for e in r.core.history] == ["first", "second"]
    assert r.recorded == ["first", "second"]


def test_a_later_final_is_typed_once_the_earlier_one_has_waited_too_long() -> None:
    r = rig()
    spoken(r, 1, 2)
    r.core.post(final(2, "second"))
    assert r.core.next_deadline() == pytest.approx(r.clock.now + r.core.order_wait_s)
    r.clock.now += r.core.order_wait_s - 0.01
    r.core.post(Tick())
    assert r.executor.submitted == []
    r.clock.now += 0.01
    r.core.post(Tick())
    assert [j.text for j in r.executor.submitted] == ["second"]
    assert r.core.next_deadline() is None


def test_no_final_waits_longer_than_the_order_wait_even_behind_a_later_arrival() -> None:
    """Final 5 arrives first, final 3 later, utterance 1 never answers: when 5 has
    waited its time, 3 goes first and 5 right after, and nothing keeps ticking."""
    r = rig()
    spoken(r, 1, 3, 5)
    r.core.post(final(5, "five"))
    r.clock.now += 5
    r.core.post(final(3, "three"))
    r.clock.now += r.core.order_wait_s - 5
    assert r.core.next_deadline() == pytest.approx(r.clock.now)
    r.core.post(Tick())
    assert [j.text for j in r.executor.submitted] == ["three"]
    r.finish_typing()
    assert [j.text for j in r.executor.submitted] == ["three", "five"]
    assert r.core.next_deadline() is None


OUT_OF_ORDER_NOTE = WITHHELD_TEXT[Withheld.OUT_OF_ORDER][0]


def second_handed_to_typist_before_first() -> Rig:
    """Utterances 1 and 2 spoken; 2's final arrives, waits ``order_wait_s`` for 1's and
    goes to the typist (still typing: ``finish_typing`` not called)."""
    r = rig()
    spoken(r, 1, 2)
    r.core.post(final(2, "second"))
    r.clock.now += r.core.order_wait_s
    r.core.post(Tick())
    return r


def test_an_earlier_final_arriving_after_a_later_text_was_typed_goes_to_history() -> None:
    """Utterance 2 is typed once it has waited for 1; 1's final comes after that. Typed,
    it would land after 2 in the document: it goes to History, and the user is told."""
    r = second_handed_to_typist_before_first()
    r.finish_typing()
    r.clock.now += 5
    r.core.post(final(1, "first"))
    assert [j.text for j in r.executor.submitted] == ["second"], "never typed after 2"
    assert [(e.text, e.typed, e.note) for e in r.core.history] == [
        ("second", True, ""),
        ("first", False, OUT_OF_ORDER_NOTE),
    ]
    assert "out of order" in OUT_OF_ORDER_NOTE
    assert r.problems == [WITHHELD_TEXT[Withheld.OUT_OF_ORDER][1]]
    assert "History" in r.problems[0] and "not typed" in r.problems[0]
    assert r.core.facts.stage is Stage.IDLE and r.core.next_deadline() is None


def test_an_earlier_final_arriving_while_a_later_one_is_being_typed_is_not_typed() -> None:
    r = second_handed_to_typist_before_first()
    assert r.core.typing_now is not None  # "second" is with the typist
    r.core.post(final(1, "first"))
    r.finish_typing()
    assert [j.text for j in r.executor.submitted] == ["second"]
    assert [(e.text, e.typed) for e in r.core.history] == [("second", True), ("first", False)]


def test_once_overtaken_an_utterance_holds_no_later_final_back() -> None:
    """Its text can no longer be typed, so nothing waits for it again."""
    r = second_handed_to_typist_before_first()
    r.finish_typing()
    spoken(r, 3)
    r.core.post(final(3, "third"))
    assert [j.text for j in r.executor.submitted] == ["second", "third"]
    assert r.core.next_deadline() is None
    r.finish_typing()
    r.core.post(UtteranceFailed(1, "the model failed on it", FailReason.ENGINE_ERROR))
    assert r.problems == ["Recognition failed: the model failed on it"], "still told"
    assert r.core.facts.stage is Stage.IDLE


def test_a_stale_final_that_was_also_overtaken_is_recorded_once() -> None:
    r = second_handed_to_typist_before_first()
    r.finish_typing()
    r.core.post(final(1, "first", stale=True))
    assert [(e.text, e.typed) for e in r.core.history] == [("second", True), ("first", False)]
    assert len(r.problems) == 1


# ---------------------------------------------------------------- outcomes are visible


def test_a_failed_utterance_is_told_and_lets_the_next_one_through() -> None:
    r = rig()
    spoken(r, 1, 2)
    r.core.post(final(2, "second"))
    r.core.post(UtteranceFailed(1, "the model failed on it", FailReason.ENGINE_ERROR))
    assert r.problems == ["Recognition failed: the model failed on it"]
    assert [j.text for j in r.executor.submitted] == ["second"]
    r.finish_typing()
    assert [e.text for e in r.core.history] == ["second"]
    assert r.core.facts.outstanding == frozenset() and r.core.facts.stage is Stage.IDLE


def test_a_cancelled_utterance_ends_quietly() -> None:
    r = rig()
    spoken(r, 1)
    assert r.core.facts.stage is Stage.FINALIZING
    r.core.post(UtteranceCancelled(1))
    assert r.problems == [] and r.core.facts.stage is Stage.IDLE and r.core.history == []


def test_a_stale_final_goes_to_history_untyped_with_a_notice() -> None:
    r = rig()
    spoken(r, 1)
    r.core.post(final(1, "said long ago", stale=True))
    assert r.executor.submitted == []
    (entry,) = r.core.history
    assert entry.text == "said long ago" and not entry.typed and "too late" in entry.note
    assert r.problems and "History" in r.problems[0]
    assert r.core.facts.stage is Stage.IDLE


def test_typing_that_raises_is_a_failed_entry_not_an_exception() -> None:
    r = rig()
    spoken(r, 1)

    class Broken:
        def type_final(self, text: str) -> None:
            raise RuntimeError("clipboard unavailable")

    r.core.post(final(1, "hello"))
    r.executor.run_next(Broken())
    (entry,) = r.core.history
    assert not entry.typed and entry.latency_ms is None and "clipboard unavailable" in entry.note
    assert r.problems == ["Could not type the text: RuntimeError: clipboard unavailable"]
    assert r.core.facts.stage is Stage.IDLE


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (TypingResult("t", deferred=True), TypingStatus.DEFERRED),
        (TypingResult("t", skipped_own_window=True), TypingStatus.SKIPPED),
        (TypingResult("t", error="OutputError: no display"), TypingStatus.FAILED),
        (TypingResult("t", typed="t", method=OutputMethod.KEYSTROKES), TypingStatus.TYPED),
    ],
)
def test_only_text_the_typist_typed_is_recorded_as_typed(
    result: TypingResult, status: TypingStatus
) -> None:
    class Typist:
        def type_final(self, text: str) -> TypingResult:
            return result

    assert type_text(Typist(), "t").status is status
    r = rig()
    r.core.post(final(1, "t"))
    r.executor.run_next(Typist())
    assert [e.typed for e in r.core.history] == [status is TypingStatus.TYPED]


def test_latency_is_end_of_speech_to_typed_and_the_timeline_says_when() -> None:
    r = rig()
    r.core.post(started(1))
    r.core.post(ended(1, at=r.clock.now))
    spoke_until = r.clock.now
    r.clock.now += 0.5
    event = final(1, "hi")
    r.core.post(event)
    r.clock.now += 0.3
    r.finish_typing()
    (entry,) = r.core.history
    assert entry.latency_ms == pytest.approx(800)
    assert event.timeline.typed == spoke_until + 0.8


def test_retype_goes_through_the_typing_queue_and_adds_no_history() -> None:
    r = rig()
    r.core.post(final(1, "one"))
    r.core.post(Retype("again"))
    assert [j.text for j in r.executor.submitted] == ["one"]
    r.finish_typing()
    assert [j.text for j in r.executor.submitted] == ["one", "again"]
    r.finish_typing()
    assert [e.text for e in r.core.history] == ["one"]


def test_empty_finals_are_neither_typed_nor_recorded() -> None:
    r = rig()
    spoken(r, 1)
    r.core.post(final(1, "  "))
    assert r.executor.submitted == [] and r.core.history == []
    assert r.core.facts.stage is Stage.IDLE


# ---------------------------------------------------------------- stage and microphone


def test_push_to_talk_stages_and_recording_cues() -> None:
    r = rig()
    r.core.post(Start())
    assert r.mic.calls == ["open push_to_talk"] and r.stages == []  # warm microphone
    r.core.post(Talk(TalkKind.PRESSED))
    r.core.post(started(1))
    r.core.post(Talk(TalkKind.RELEASED))
    assert r.core.facts.stage is Stage.SPEAKING, "the release tail is still recorded"
    r.core.post(ended(1, at=r.clock.now))
    r.core.post(final(1, "hello"))
    r.finish_typing()
    assert r.stages == [
        Stage.LISTENING,
        Stage.SPEAKING,
        Stage.FINALIZING,
        Stage.TYPING,
        Stage.IDLE,
    ]
    assert [n.recording for n in r.notices if isinstance(n, RecordingChanged)] == [True, False]
    assert r.mic.calls == ["open push_to_talk", "press", "release"]


def test_a_tap_is_handed_to_the_microphone_to_judge() -> None:
    r = rig()
    r.core.post(Talk(TalkKind.PRESSED))
    r.core.post(Talk(TalkKind.TAPPED))
    assert r.mic.calls[-2:] == ["press", "tap"] and not r.core.facts.active


def test_a_cancelled_hold_and_a_dropped_candidate_leave_nothing_outstanding() -> None:
    r = rig()
    r.core.post(Talk(TalkKind.PRESSED))
    r.core.post(started(1))
    r.core.post(Talk(TalkKind.CANCELLED))
    r.core.post(ended(1, reason=EndReason.CANCELLED))
    r.core.post(Talk(TalkKind.PRESSED))
    r.core.post(UtteranceDropped(2, DropReason.NO_SPEECH, 0, 100, 0))
    r.core.post(Talk(TalkKind.RELEASED))
    assert r.core.facts.outstanding == frozenset() and r.core.facts.stage is Stage.IDLE
    assert "cancel" in r.mic.calls


def test_the_toggle_key_alternates_press_and_release() -> None:
    r = rig(Mode.TOGGLE)
    r.core.post(Talk(TalkKind.TOGGLED))
    assert r.core.facts.active
    r.core.post(Talk(TalkKind.TOGGLED))
    assert not r.core.facts.active and r.mic.calls[-2:] == ["press", "release"]


def test_hands_free_from_the_tray_and_back_to_the_warm_talk_key() -> None:
    r = rig()
    r.core.post(Start())
    r.core.post(SwitchHandsFree())
    assert r.core.mode is Mode.HANDS_FREE and r.core.facts.stage is Stage.LISTENING
    r.core.post(Talk(TalkKind.PRESSED))  # the talk key does nothing while hands-free
    assert "press" not in r.mic.calls
    r.core.post(SwitchHandsFree())
    assert r.mic.calls == ["open push_to_talk", "mode hands_free", "mode push_to_talk"]
    assert r.core.facts.stage is Stage.IDLE


def test_a_microphone_that_cannot_open_is_reported() -> None:
    r = rig(Mode.HANDS_FREE, FakeMicrophone(fail_with="PortAudio library not found"))
    r.core.post(SwitchHandsFree())
    assert r.problems == ["Cannot open the microphone: PortAudio library not found"]
    assert r.core.facts.stage is Stage.IDLE and r.core.mode is Mode.HANDS_FREE
    r.core.post(Talk(TalkKind.PRESSED))  # hands-free configured: no talk key
    assert r.stages == []


def test_audio_failure_closes_the_microphone_and_stops_dictation() -> None:
    r = rig(Mode.HANDS_FREE)
    r.core.post(SwitchHandsFree())
    r.core.post(started(1))
    r.core.post(AudioFailed("device unplugged"))
    assert r.problems == ["Audio stopped: device unplugged"]
    assert not r.mic.is_open and r.core.facts.stage is Stage.IDLE


def test_new_audio_settings_reopen_the_microphone_in_the_new_mode() -> None:
    r = rig()
    r.core.post(Start())
    r.core.post(SettingsChanged(Mode.TOGGLE, audio_changed=True))
    assert r.mic.calls == ["open push_to_talk", "close", "open toggle"]
    r.core.post(SettingsChanged(Mode.HANDS_FREE, audio_changed=True))
    assert r.mic.calls[-1] == "close" and not r.mic.is_open


def test_a_cold_microphone_opens_at_the_press_and_closes_after_the_utterance() -> None:
    r = rig()
    r.core.post(SettingsChanged(Mode.PUSH_TO_TALK, audio_changed=False, warm_microphone=False))
    r.core.post(Start())
    assert r.mic.calls == [] and not r.mic.is_open
    r.core.post(Talk(TalkKind.PRESSED))
    r.core.post(started(1))
    r.core.post(Talk(TalkKind.RELEASED))
    assert r.mic.is_open, "the release tail is still being recorded"
    r.core.post(Talk(TalkKind.PRESSED))  # pressed again before the tail ended
    r.core.post(ended(1, at=r.clock.now))
    assert r.mic.is_open
    r.core.post(Talk(TalkKind.TAPPED))
    r.core.post(UtteranceDropped(2, DropReason.CANCELLED, 0, 100, 0))
    assert r.mic.calls == ["open push_to_talk", "press", "release", "press", "tap", "close"]


def test_turning_the_warm_microphone_off_closes_an_idle_one() -> None:
    r = rig()
    r.core.post(Start())
    assert r.mic.is_open
    r.core.post(SettingsChanged(Mode.PUSH_TO_TALK, audio_changed=False, warm_microphone=False))
    assert not r.mic.is_open


# ---------------------------------------------------------------- any order of arrival


@dataclass(frozen=True)
class Planned:
    uid: int
    kind: str  # final | stale | failed | cancelled


@settings(max_examples=60, deadline=None, database=None)
@given(
    kinds=st.lists(st.sampled_from(["final", "stale", "failed", "cancelled"]), max_size=7),
    data=st.data(),
)
def test_whatever_order_outcomes_and_typing_results_come_in(
    kinds: list[str], data: st.DataObject
) -> None:
    """Outcomes arrive in any order, typing finishes at any moment in between: one job
    at a time, every final recorded once, history in utterance order, typed only if typed."""
    r = rig()
    plan = [Planned(uid, kind) for uid, kind in enumerate(kinds, start=1)]
    spoken(r, *(p.uid for p in plan))
    arriving = data.draw(st.permutations(plan))
    finished = 0
    while arriving or r.core.typing_now is not None:
        unfinished = len(r.executor.submitted) - finished
        assert unfinished == (1 if r.core.typing_now is not None else 0)
        if r.core.typing_now is not None and (not arriving or data.draw(st.booleans())):
            r.finish_typing()
            finished += 1
            continue
        p = arriving.pop(0)
        if p.kind == "failed":
            r.core.post(UtteranceFailed(p.uid, "no", FailReason.ENGINE_ERROR))
        elif p.kind == "cancelled":
            r.core.post(UtteranceCancelled(p.uid))
        else:
            r.core.post(final(p.uid, f"text {p.uid}", stale=p.kind == "stale"))
    with_text = [p for p in plan if p.kind in ("final", "stale")]
    assert [(e.text, e.typed) for e in r.core.history] == [
        (f"text {p.uid}", p.kind == "final") for p in with_text
    ]
    assert [j.text for j in r.executor.submitted] == [
        f"text {p.uid}" for p in plan if p.kind == "final"
    ]
    assert r.problems.count("Recognition failed: no") == kinds.count("failed")
    assert r.core.facts.stage is Stage.IDLE and r.core.next_deadline() is None


def test_the_core_and_the_vocabulary_import_neither_qt_nor_asyncio() -> None:
    """Checked in a fresh interpreter: this test process has Qt loaded already."""
    import subprocess
    import sys

    modules = ("desktop.dictation", "desktop.settings", "protocol.client_events")
    code = (
        f"import sys\nfor m in {modules!r}: __import__(m)\n"
        "print(sorted(m for m in ('PySide6', 'asyncio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


@settings(max_examples=60, deadline=None, database=None)
@given(
    kinds=st.lists(st.sampled_from(["final", "silent", "failed"]), max_size=6),
    data=st.data(),
)
def test_with_time_passing_no_final_waits_too_long_and_no_tick_is_due_in_the_past(
    kinds: list[str], data: st.DataObject
) -> None:
    """Some utterances never get an outcome ("silent"); time passes between arrivals.
    After every command: nothing waits past order_wait_s, and the next tick the core
    asks for is in the future (a due-now deadline would make the adapter spin)."""
    r = rig()
    plan = [Planned(uid, kind) for uid, kind in enumerate(kinds, start=1)]
    spoken(r, *(p.uid for p in plan))
    arriving = [p for p in data.draw(st.permutations(plan)) if p.kind != "silent"]

    def check() -> None:
        deadline = r.core.next_deadline()
        assert deadline is None or deadline > r.clock.now

    for _ in range(4 * len(plan)):
        if not (arriving or r.core.typing_now is not None):
            break
        steps = ["wait"] + ["type"] * (r.core.typing_now is not None) + ["arrive"] * bool(arriving)
        step = data.draw(st.sampled_from(steps))
        if step == "wait":
            r.clock.now += data.draw(st.floats(0, 2 * r.core.order_wait_s))
            r.core.post(Tick())
        elif step == "type":
            r.finish_typing()
        else:
            p = arriving.pop(0)
            r.core.post(final(p.uid, f"text {p.uid}") if p.kind == "final" else failed(p.uid))
        check()
    for p in arriving:  # what the steps left: in order, at once
        r.core.post(final(p.uid, f"text {p.uid}") if p.kind == "final" else failed(p.uid))
        check()
    r.clock.now += r.core.order_wait_s
    r.core.post(Tick())
    while r.core.typing_now is not None:
        r.finish_typing()
    check()
    recorded = sorted(e.text for e in r.core.history)
    assert recorded == sorted(f"text {p.uid}" for p in plan if p.kind == "final")
    # never typed out of order: what went to the typist rises in utterance order, and
    # whatever was not typed says why
    typed_ids = [j.utterance_id for j in r.executor.submitted]
    assert typed_ids == sorted(typed_ids)
    assert all(e.typed or e.note == OUT_OF_ORDER_NOTE for e in r.core.history)


# ---------------------------------------------------------------- session lock


LOCKED_NOTE = "not typed: the session was locked"


def test_locking_stops_hands_free_like_the_tray_and_the_final_goes_to_history() -> None:
    r = rig(Mode.HANDS_FREE)
    r.core.post(SwitchHandsFree())
    r.core.post(started(1))
    r.core.post(SessionLockChanged(locked=True))
    # as the tray click would: dictation off, the (cold, hands-free) microphone closed
    assert r.mic.calls == ["open hands_free", "close"]
    assert not r.core.facts.active and not r.core.facts.recording
    r.core.post(ended(1, at=r.clock.now))  # the utterance in progress ends normally
    r.core.post(final(1, "said before the lock"))
    assert r.executor.submitted == [], "nothing is typed into a locked session"
    [entry] = r.core.history
    assert (entry.text, entry.typed, entry.note) == ("said before the lock", False, LOCKED_NOTE)
    assert r.problems == ["The session is locked: the text was not typed; it is in History."]
    assert r.core.facts.stage is Stage.IDLE


def test_after_unlocking_finals_are_typed_again_and_dictation_stays_off() -> None:
    r = rig(Mode.HANDS_FREE)
    r.core.post(SwitchHandsFree())
    r.core.post(SessionLockChanged(locked=True))
    r.core.post(SessionLockChanged(locked=False))
    assert not r.core.facts.active, "unlocking does not switch dictation back on"
    r.core.post(SwitchHandsFree())
    spoken(r, 1)
    r.core.post(final(1, "after the unlock"))
    assert [j.text for j in r.executor.submitted] == ["after the unlock"]
    r.finish_typing()
    assert [(e.text, e.typed) for e in r.core.history] == [("after the unlock", True)]


def test_locking_ends_a_toggled_dictation_with_a_normal_release() -> None:
    r = rig(Mode.TOGGLE)
    r.core.post(Talk(TalkKind.TOGGLED))
    r.core.post(started(1))
    r.core.post(SessionLockChanged(locked=True))
    assert r.mic.calls[-2:] == ["press", "release"], "released, not cancelled"
    assert not r.core.facts.active
    r.core.post(ended(1, at=r.clock.now))
    r.core.post(final(1, "toggled"))
    assert [(e.text, e.typed, e.note) for e in r.core.history] == [("toggled", False, LOCKED_NOTE)]
    r.core.post(Talk(TalkKind.TOGGLED))  # the next toggle starts again (not a release)
    assert r.core.facts.active and r.mic.calls[-1] == "press"


def test_locking_leaves_a_hold_to_the_hotkey_listener() -> None:
    """The listener hears the lock too and cancels a hold (its release would never come);
    the core does not race it with a release of its own."""
    r = rig()
    r.core.post(Talk(TalkKind.PRESSED))
    r.core.post(SessionLockChanged(locked=True))
    assert r.mic.calls[-1] == "press" and r.core.facts.active
    r.core.post(Talk(TalkKind.CANCELLED))  # what the listener sends
    assert r.mic.calls[-1] == "cancel" and not r.core.facts.active


def test_a_typing_already_running_at_the_lock_finishes_and_the_queue_goes_to_history() -> None:
    r = rig()
    spoken(r, 1, 2)
    r.core.post(final(1, "first"))
    r.core.post(final(2, "second"))
    assert [j.text for j in r.executor.submitted] == ["first"]
    r.core.post(SessionLockChanged(locked=True))
    r.finish_typing()  # the executor had it already
    assert [j.text for j in r.executor.submitted] == ["first"]
    assert [(e.text, e.typed, e.note) for e in r.core.history] == [
        ("first", True, ""),
        ("second", False, LOCKED_NOTE),
    ]
    assert r.core.facts.stage is Stage.IDLE


# ---------------------------------------------------------------- held modifiers


@dataclass
class HeldKeys:
    """The non-blocking modifier probe: keys held until ``release_at`` on the clock."""

    clock: FakeClock
    keys: tuple[str, ...] = ("Control_R",)
    release_at: float | None = None
    reads: int = 0
    fail: bool = False

    def __call__(self) -> tuple[str, ...]:
        self.reads += 1
        if self.fail:
            raise OSError("the display went away")
        if self.release_at is not None and self.clock.now >= self.release_at:
            return ()
        return self.keys


def held_rig(release_after: float | None) -> tuple[Rig, HeldKeys]:
    clock, notices = FakeClock(), []
    keys = HeldKeys(clock, release_at=None if release_after is None else 100 + release_after)
    mic, executor = FakeMicrophone(), ManualExecutor()
    core = DictationCore(
        mic,
        executor,
        notices.append,
        mode=Mode.PUSH_TO_TALK,
        clock=clock,
        wall_clock=lambda: 1e9,
        held_modifiers=keys,
    )
    executor.core = core
    return Rig(core, mic, executor, clock, notices), keys


def tick_until(r: Rig, until: float) -> list[float]:
    """Advance the clock to each deadline the core asks for and tick, up to ``until``;
    the deadlines asked for."""
    asked: list[float] = []
    while (deadline := r.core.next_deadline()) is not None and deadline <= until:
        assert deadline >= r.clock.now, "a tick asked for in the past"
        asked.append(deadline)
        r.clock.now = deadline
        r.core.post(Tick())
    return asked


def test_a_final_waits_queued_while_a_modifier_is_held_then_is_typed() -> None:
    r, _ = held_rig(release_after=0.3)
    spoken(r, 1)
    r.core.post(final(1, "hello"))
    assert r.executor.submitted == [], "not started while Ctrl is held"
    assert r.core.facts.stage is Stage.TYPING
    asked = tick_until(r, 100 + 2.0)
    [job] = r.executor.submitted
    assert job.text == "hello" and job.modifiers_held == ()
    assert r.clock.now == pytest.approx(100.3, abs=0.021), "started soon after the release"
    assert all(b - a <= 0.02 + 1e-9 for a, b in zip([100.0, *asked], asked, strict=False))
    assert r.core.next_deadline() is None
    r.finish_typing()
    assert [(e.text, e.typed) for e in r.core.history] == [("hello", True)]


def test_talk_key_presses_during_the_wait_are_not_delayed() -> None:
    r, _ = held_rig(release_after=0.5)
    spoken(r, 1)
    r.core.post(final(1, "first"))
    r.clock.now += 0.1
    r.core.post(Talk(TalkKind.PRESSED))  # the next utterance's hold key: applied at once
    assert r.mic.calls[-1] == "press" and r.core.facts.active
    assert r.executor.submitted == []


def test_a_modifier_held_past_the_wait_sends_the_job_with_the_keys_named() -> None:
    r, _ = held_rig(release_after=None)
    spoken(r, 1, 2)
    r.core.post(final(1, "one"))
    r.core.post(final(2, "two"))
    tick_until(r, 100 + 10)
    [job] = r.executor.submitted
    assert job.text == "one" and job.modifiers_held == ("Control_R",)
    assert r.clock.now == pytest.approx(100 + 1.5), "bounded by the same 1.5 s"

    class Typer:
        def __init__(self) -> None:
            self.calls: list[tuple[str, tuple[str, ...]]] = []

        def type_final(self, text: str, *, modifiers_held: tuple[str, ...] = ()) -> TypingResult:
            self.calls.append((text, modifiers_held))
            return TypingResult(
                text, error="ModifiersHeld: held", problem="A modifier key stayed held; ..."
            )

    typer = Typer()
    r.executor.run_next(typer)
    assert typer.calls == [("one", ("Control_R",))]
    assert [(e.text, e.typed) for e in r.core.history] == [("one", False)]
    # the next job waits afresh (its own 1.5 s), not given up at once
    assert len(r.executor.submitted) == 1
    start = r.clock.now
    tick_until(r, start + 10)
    assert r.executor.submitted[-1].text == "two"
    assert r.clock.now == pytest.approx(start + 1.5)


def test_without_a_probe_or_with_a_failing_one_typing_starts_at_once() -> None:
    r = rig()
    spoken(r, 1)
    r.core.post(final(1, "no probe"))
    assert [j.text for j in r.executor.submitted] == ["no probe"]
    r2, keys = held_rig(release_after=None)
    keys.fail = True
    spoken(r2, 1)
    r2.core.post(final(1, "unreadable"))
    assert [j.modifiers_held for j in r2.executor.submitted] == [()]


def test_a_lock_during_the_wait_records_the_final_and_stops_the_ticks() -> None:
    r, _ = held_rig(release_after=None)
    spoken(r, 1)
    r.core.post(final(1, "waiting"))
    assert r.core.next_deadline() is not None
    r.core.post(SessionLockChanged(locked=True))
    assert r.executor.submitted == []
    assert [(e.text, e.note) for e in r.core.history] == [("waiting", LOCKED_NOTE)]
    assert r.core.next_deadline() is None and r.core.facts.stage is Stage.IDLE


def test_an_earlier_final_arriving_while_the_later_one_waits_for_modifiers_goes_first() -> None:
    """Utterance 2 was released after its wait but has not started (Ctrl is held): 1's
    final, arriving now, still lands in order, before it."""
    r, _ = held_rig(release_after=None)
    spoken(r, 1, 2)
    r.core.post(final(2, "second"))
    r.clock.now += r.core.order_wait_s
    r.core.post(Tick())
    assert [j.text for j in r.core.typing_queue] == ["second"] and r.executor.submitted == []
    r.clock.now += 0.5
    r.core.post(final(1, "first"))
    assert [j.text for j in r.core.typing_queue] == ["first", "second"]
    tick_until(r, r.clock.now + 10)  # Ctrl stays held: each goes with the keys named
    r.finish_typing()
    tick_until(r, r.clock.now + 10)
    r.finish_typing()
    assert [j.text for j in r.executor.submitted] == ["first", "second"]
    assert [e.text for e in r.core.history] == ["first", "second"]


def test_stale_finals_are_recorded_without_reading_the_keyboard() -> None:
    r, keys = held_rig(release_after=None)
    spoken(r, 1)
    r.core.post(final(1, "late", stale=True))
    assert keys.reads == 0 and r.core.next_deadline() is None
    assert [(e.text, e.typed) for e in r.core.history] == [("late", False)]
