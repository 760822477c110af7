"""The Qt adapter over the dictation core (:mod:`desktop.dictation`).

Hotkeys, the tray and the settings dialog call its slots; each becomes a command for the
core. The adapter owns the I/O the core only names: the audio pipeline (behind the
core's :class:`~desktop.dictation.Microphone` port), the streaming client and the typist.

Threads: audio goes from the audio thread straight to the client thread
(``client.submit``); only an utterance's lifecycle events (started, ended, dropped) and
the client's outcomes cross to the Qt thread, as queued signals, and become commands
there. Typing jobs run from a zero-delay Qt timer, one at a time; their result comes
back as a command, so a typist that spins a nested event loop cannot re-enter the core.
The core's notices become this object's signals; its deadline becomes a Qt timer.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from desktop.audio.pipeline import AudioPipeline
from desktop.audio.segmenter import (
    AudioChunk,
    Event,
    Mode,
    Segmenter,
    SegmenterConfig,
)
from desktop.audio.source import AudioSource
from desktop.audio.vad import SpeechDetector
from desktop.dictation import (
    AudioFailed,
    Command,
    DictationCore,
    DictationFacts,
    FinalRecorded,
    FinalTyper,
    HistoryEntry,
    Notice,
    Problem,
    RecordingChanged,
    Retype,
    SessionLockChanged,
    SettingsChanged,
    Shutdown,
    Stage,
    StageChanged,
    Start,
    SwitchHandsFree,
    Talk,
    TalkKind,
    Tick,
    TypingDone,
    TypingJob,
    type_text,
)
from desktop.settings import Settings
from desktop.streaming import DictationClient
from protocol.client_events import ClientEvent, ClientState, PartialText, StateChanged
from protocol.log_redaction import TRANSCRIPTS_ENV, env_flag, text_for_log

log = logging.getLogger(__name__)

# Re-exported: the UI and the tests name them from here.
__all__ = ["Coordinator", "DictationFacts", "FinalTyper", "HistoryEntry", "Stage"]


def segmenter_config(settings: Settings) -> SegmenterConfig:
    return SegmenterConfig(
        threshold=settings.vad_threshold,
        pre_roll_ms=settings.pre_roll_ms,
        min_silence_ms=settings.min_silence_ms,
        tail_ms=settings.tail_ms,
        release_tail_ms=settings.release_tail_ms,
    )


class _Bridge(QObject):
    """Carries lifecycle events and client events from their threads to the Qt thread."""

    segment = Signal(object)  # UtteranceStarted / UtteranceEnded / UtteranceDropped
    client = Signal(object)
    audio_error = Signal(object)  # the audio thread stopped with this exception


class _PipelineMicrophone:
    """The core's Microphone port: an :class:`AudioPipeline` made on demand."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        source_factory: Callable[[Settings], AudioSource],
        detector_factory: Callable[[], SpeechDetector],
        on_event: Callable[[Event], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._settings = settings  # the current ones, read at each open
        self._source_factory = source_factory
        self._detector_factory = detector_factory
        self._on_event = on_event  # audio thread
        self._on_error = on_error  # audio thread
        self.pipeline: AudioPipeline | None = None

    @property
    def is_open(self) -> bool:
        return self.pipeline is not None

    def open(self, mode: Mode) -> str | None:
        if self.pipeline is not None and self.pipeline.running:
            return None
        settings = self._settings()
        try:
            source = self._source_factory(settings)
            detector = self._detector_factory()
        except Exception as exc:  # no PortAudio, no device, no VAD model...
            log.exception("cannot open the microphone")
            return str(exc)
        segmenter = Segmenter(segmenter_config(settings), mode)
        self.pipeline = AudioPipeline(
            source, segmenter, detector, self._on_event, on_error=self._on_error
        )
        self.pipeline.start()
        return None

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None

    def set_mode(self, mode: Mode) -> None:
        if self.pipeline is not None:
            self.pipeline.set_mode(mode)

    def press(self) -> None:
        if self.pipeline is not None:
            self.pipeline.press()

    def release(self) -> None:
        if self.pipeline is not None:
            self.pipeline.release()

    def tap(self) -> None:
        if self.pipeline is not None:
            self.pipeline.tap()

    def cancel(self) -> None:
        if self.pipeline is not None:
            self.pipeline.cancel()
            self.pipeline.release()


class _QtTypingExecutor:
    """Runs a typing job from a zero-delay timer on the Qt thread (the clipboard output
    must run there), then posts its result to the core."""

    def __init__(
        self, context: QObject, typer: FinalTyper, post: Callable[[TypingDone], None]
    ) -> None:
        self._context = context  # the timer is dropped if it is deleted
        self._typer = typer
        self._post = post

    def submit(self, job: TypingJob) -> None:
        QTimer.singleShot(0, self._context, functools.partial(self._run, job))

    def _run(self, job: TypingJob) -> None:
        self._post(TypingDone(job, type_text(self._typer, job.text, job.modifiers_held)))


class Coordinator(QObject):
    stage_changed = Signal(object)  # Stage
    partial = Signal(str, str)  # stable, unstable
    final = Signal(object)  # HistoryEntry
    server_state = Signal(object, str)  # ClientState, detail
    problem = Signal(str)  # something the user should be told
    recording_changed = Signal(bool)  # DictationFacts.recording (start/stop cues)

    def __init__(
        self,
        settings: Settings,
        typer: FinalTyper,
        source_factory: Callable[[Settings], AudioSource],
        detector_factory: Callable[[], SpeechDetector],
        clock: Callable[[], float] = time.monotonic,
        held_modifiers: Callable[[], tuple[str, ...]] | None = None,
    ) -> None:
        """``held_modifiers``: reads which modifier keys are held now, without waiting
        (the typist's probe); typing starts once none is (see the dictation core)."""
        super().__init__()
        self.settings = settings
        self._bridge = _Bridge()
        self._bridge.segment.connect(self._post)
        self._bridge.client.connect(self._on_client)
        self._bridge.audio_error.connect(self._on_audio_error)
        self._microphone = _PipelineMicrophone(
            lambda: self.settings,
            source_factory,
            detector_factory,
            self._on_audio_event,
            self._bridge.audio_error.emit,
        )
        self._tick = QTimer(self)
        self._tick.setSingleShot(True)
        self._tick.setTimerType(Qt.TimerType.PreciseTimer)  # a coarse one may fire early
        self._tick.timeout.connect(lambda: self._post(Tick()))
        self._clock = clock
        self.core = DictationCore(
            self._microphone,
            _QtTypingExecutor(self, typer, self._post),
            self._on_notice,
            mode=settings.mode,
            clock=clock,
            wall_clock=time.time,
            warm_microphone=settings.warm_mic,
            held_modifiers=held_modifiers,
        )
        self.client = self._make_client(settings)

    # ---------------------------------------------------------------- the core's view

    @property
    def facts(self) -> DictationFacts:
        return self.core.facts

    @property
    def history(self) -> list[HistoryEntry]:
        return self.core.history

    @property
    def mode(self) -> Mode:
        return self.core.mode

    @Slot(object)
    def _post(self, command: Command) -> None:
        self.core.post(command)
        deadline = self.core.next_deadline()
        if deadline is None:
            self._tick.stop()
        else:
            # rounded up: a tick before the deadline would find nothing to do
            self._tick.start(max(0, math.ceil((deadline - self._clock()) * 1000)))

    def _on_notice(self, notice: Notice) -> None:
        if isinstance(notice, StageChanged):
            self.stage_changed.emit(notice.stage)
        elif isinstance(notice, RecordingChanged):
            self.recording_changed.emit(notice.recording)
        elif isinstance(notice, Problem):
            self.problem.emit(notice.text)
        elif isinstance(notice, FinalRecorded):
            entry = notice.entry
            log.info(
                "final: %s (%s)",
                text_for_log(entry.text, self.client.log_transcripts),
                f"{entry.latency_ms:.0f} ms end of speech → typed"
                if entry.latency_ms is not None
                else entry.note or "not typed",
            )
            self.final.emit(entry)

    # ---------------------------------------------------------------- lifecycle

    def _make_client(self, settings: Settings) -> DictationClient:
        return DictationClient(
            settings.server_url,
            self.on_client_event,
            token=settings.token or None,
            ca_file=settings.ca_file or None,
            # off in the settings still lets TINGXIE_LOG_TRANSCRIPTS=1 turn it on
            log_transcripts=settings.log_transcripts or None,
            language=settings.language or None,
            context=settings.context,
        )

    def start(self) -> None:
        self.client.start()
        self._post(Start())

    def shutdown(self) -> None:
        self._post(Shutdown())
        self.client.close()

    def apply_settings(self, settings: Settings) -> None:
        """New settings take effect now, without a restart."""
        old, self.settings = self.settings, settings
        if (old.server_url, old.token, old.ca_file) != (
            settings.server_url,
            settings.token,
            settings.ca_file,
        ):
            self.client.reconfigure(
                settings.server_url, settings.token or None, settings.ca_file or None
            )
        if old.log_transcripts != settings.log_transcripts:
            # as at start: off in the settings leaves TINGXIE_LOG_TRANSCRIPTS=1 in force;
            # frame payloads follow from the next connection
            self.client.log_transcripts = settings.log_transcripts or env_flag(
                os.environ, TRANSCRIPTS_ENV
            )
        self.client.language = settings.language or None
        self.client.context = settings.context
        audio_changed = (
            old.microphone != settings.microphone
            or old.mode != settings.mode
            or segmenter_config(old) != segmenter_config(settings)
        )
        self._post(SettingsChanged(settings.mode, audio_changed, settings.warm_mic))

    # ---------------------------------------------------------------- commands

    @Slot()
    def toggle_dictation(self) -> None:
        """Tray click: hands-free dictation on/off, whatever the configured mode."""
        self._post(SwitchHandsFree())

    @Slot()
    def talk_pressed(self) -> None:
        self._post(Talk(TalkKind.PRESSED))

    @Slot()
    def talk_released(self) -> None:
        self._post(Talk(TalkKind.RELEASED))

    @Slot()
    def talk_tapped(self) -> None:
        """A press too short to be a hold: kept if the VAD heard speech in it."""
        self._post(Talk(TalkKind.TAPPED))

    @Slot()
    def talk_cancelled(self) -> None:
        """The talk key turned out to be part of a shortcut: drop what it recorded."""
        self._post(Talk(TalkKind.CANCELLED))

    @Slot()
    def talk_toggled(self) -> None:
        self._post(Talk(TalkKind.TOGGLED))

    @Slot(bool)
    def session_lock_changed(self, locked: bool) -> None:
        """The session was locked or unlocked (Windows: the shell thread, through a queued
        signal): locking ends hands-free and toggled dictation; nothing is typed while
        locked."""
        self._post(SessionLockChanged(locked))

    def retype(self, text: str) -> None:
        """History: type an earlier text again (queued behind any typing in progress)."""
        self._post(Retype(text))

    # ---------------------------------------------------------------- other threads

    def on_client_event(self, event: ClientEvent) -> None:
        """The client's callback (its thread, or any): handled on the Qt thread."""
        self._bridge.client.emit(event)

    def _on_audio_event(self, event: Event) -> None:
        """Audio thread: audio to the client directly; lifecycle events also to Qt.
        Qt first, so the core has seen an utterance end before its final can arrive."""
        if not isinstance(event, AudioChunk):
            self._bridge.segment.emit(event)
        self.client.submit(event)

    @Slot(object)
    def _on_audio_error(self, error: BaseException) -> None:
        self._post(AudioFailed(str(error)))

    @Slot(object)
    def _on_client(self, event: ClientEvent) -> None:
        if isinstance(event, PartialText):
            self.partial.emit(event.stable, event.unstable)
        elif isinstance(event, StateChanged):
            self.server_state.emit(event.state, event.detail)
            if event.state is ClientState.AUTH_FAILED:
                self.problem.emit(f"The server refused the token: {event.detail}")
        else:  # an utterance's outcome: final, failed or cancelled
            self._post(event)
