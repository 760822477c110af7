"""Session lock, from the shell thread to the dictation core (issue 12): the shell thread
(over the recording fake) reports lock and unlock to ``on_session_lock``; the app hands
that, through a queued signal, to the coordinator, whose core stops hands-free dictation
and types nothing while locked. Offscreen Qt, no server (the client never connects)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
from PySide6.QtCore import QObject, Signal

from desktop.audio.segmenter import EndReason, Mode, UtteranceEnded, UtteranceStarted
from desktop.audio.source import ArraySource
from desktop.audio.vad import ScriptedDetector
from desktop.coordinator import Coordinator, HistoryEntry, Stage
from desktop.settings import Settings
from desktop.win32.shell import (
    WM_WTSSESSION_CHANGE,
    WTS_SESSION_LOCK,
    WTS_SESSION_UNLOCK,
    ShellThread,
)
from protocol.client_events import FinalText
from protocol.client_timeline import UtteranceTimeline
from tests.win32.fake_shell import FakeShellApi
from tests.win32.test_shell_thread import Sink

WTS_SESSION_LOGON = 0x5


class _Signals(QObject):
    """As the app's: the shell thread emits, the Qt thread receives (queued)."""

    session_lock = Signal(bool)


class _Typer:
    def __init__(self) -> None:
        self.typed: list[str] = []

    def type_final(self, text: str) -> None:
        self.typed.append(text)


def test_lock_and_unlock_reach_the_callback_and_only_lock_the_sink() -> None:
    api = FakeShellApi()
    for code in (WTS_SESSION_LOGON, WTS_SESSION_LOCK, WTS_SESSION_UNLOCK):
        api.script.append((WM_WTSSESSION_CHANGE, code, 0))
    seen: list[tuple[bool, str]] = []
    shell = ShellThread(
        api, on_session_lock=lambda locked: seen.append((locked, threading.current_thread().name))
    )
    sink = Sink()
    shell.start(sink, timeout=5)
    shell.stop()
    assert api.loop_done.is_set()
    assert seen == [(True, "win32-shell"), (False, "win32-shell")]
    assert sink.events == [("locked",)]  # the hotkey listener cancels holds, as before


def test_a_failing_session_callback_does_not_kill_the_shell_thread() -> None:
    api = FakeShellApi()
    api.script.append((WM_WTSSESSION_CHANGE, WTS_SESSION_LOCK, 0))

    def fails(locked: bool) -> None:
        raise RuntimeError("boom")

    shell = ShellThread(api, on_session_lock=fails)
    sink = Sink()
    shell.start(sink, timeout=5)
    api.deliver(WM_WTSSESSION_CHANGE, WTS_SESSION_UNLOCK)
    shell.stop()
    assert api.loop_done.is_set() and sink.events == [("locked",)]


def test_locking_the_session_stops_hands_free_dictation_and_types_nothing(qtbot) -> None:  # type: ignore[no-untyped-def]
    typer = _Typer()
    coordinator = Coordinator(
        replace(Settings(), server_url="ws://127.0.0.1:9", mode=Mode.HANDS_FREE),
        typer,
        lambda s: ArraySource(np.zeros(16000, np.int16), realtime=True),
        lambda: ScriptedDetector([]),
    )
    signals = _Signals()
    signals.session_lock.connect(coordinator.session_lock_changed)  # as app.py wires it
    finals: list[HistoryEntry] = []
    problems: list[str] = []
    coordinator.final.connect(finals.append)
    coordinator.problem.connect(problems.append)
    api = FakeShellApi()
    shell = ShellThread(api, on_session_lock=signals.session_lock.emit)
    shell.start(Sink(), timeout=5)
    try:
        coordinator.toggle_dictation()  # the tray click: hands-free on
        assert coordinator.facts.stage is Stage.LISTENING
        # an utterance is being spoken when the user presses Win+L
        coordinator.core.post(UtteranceStarted(1, 0, 0, Mode.HANDS_FREE))
        api.deliver(WM_WTSSESSION_CHANGE, WTS_SESSION_LOCK)
        qtbot.waitUntil(lambda: not coordinator.facts.active, timeout=5000)
        assert not coordinator.facts.recording and coordinator.core.locked
        # the utterance's final arrives while locked: history, with a notice; not typed
        coordinator.core.post(UtteranceEnded(1, EndReason.SILENCE, 0, 1, 1, 1))
        coordinator.on_client_event(FinalText(1, "before the lock", None, UtteranceTimeline(1)))
        qtbot.waitUntil(lambda: len(finals) == 1, timeout=5000)
        assert (finals[0].text, finals[0].typed) == ("before the lock", False)
        assert "locked" in finals[0].note and any("locked" in p for p in problems)
        # unlocked: the next final is typed
        api.deliver(WM_WTSSESSION_CHANGE, WTS_SESSION_UNLOCK)
        coordinator.core.post(UtteranceStarted(2, 0, 0, Mode.HANDS_FREE))
        coordinator.core.post(UtteranceEnded(2, EndReason.SILENCE, 0, 1, 1, 1))
        qtbot.waitUntil(lambda: not coordinator.core.locked, timeout=5000)
        coordinator.on_client_event(FinalText(2, "after the unlock", None, UtteranceTimeline(2)))
        qtbot.waitUntil(lambda: typer.typed == ["after the unlock"], timeout=5000)
    finally:
        shell.stop()
        coordinator.shutdown()
    assert typer.typed == ["after the unlock"]
