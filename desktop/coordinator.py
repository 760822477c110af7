"""The dictation lifecycle: one object that owns the pipeline, the client and typing.

Hotkeys, the tray and the settings dialog only send it commands. Audio-thread and
client-thread callbacks are re-emitted as Qt signals, so everything here runs on the
Qt main thread, in order.

The stage is *derived* from a few facts (is dictation active, is someone speaking, how
many finals are outstanding, is text being typed) rather than kept as a state machine:
utterances overlap (the next sentence starts while the last one is decoding), and
facts cannot get out of step the way transitions can.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from PySide6.QtCore import QObject, Signal, Slot

from desktop.audio.pipeline import AudioPipeline
from desktop.audio.segmenter import (
    Event,
    Mode,
    Segmenter,
    SegmenterConfig,
    UtteranceDropped,
    UtteranceEnded,
    UtteranceStarted,
)
from desktop.audio.source import AudioSource
from desktop.audio.vad import SpeechDetector
from desktop.settings import Settings
from desktop.streaming import (
    ClientEvent,
    ClientState,
    DictationClient,
    FinalText,
    PartialText,
    StateChanged,
    UtteranceFailed,
)
from protocol.log_redaction import TRANSCRIPTS_ENV, env_flag, text_for_log

log = logging.getLogger(__name__)


class Stage(enum.Enum):
    IDLE = "idle"
    LISTENING = "listening"
    SPEAKING = "speaking"
    FINALIZING = "finalizing"
    TYPING = "typing"


@dataclass(frozen=True)
class DictationFacts:
    """What the stage is derived from (pure)."""

    active: bool = False  # hands-free on, or the talk key held / latched
    speaking: bool = False  # an utterance is open
    outstanding: frozenset[int] = field(default_factory=frozenset)  # ended, no final yet
    typing: bool = False

    @property
    def recording(self) -> bool:
        """The microphone is feeding (or may feed) the server: dictation is on, or an
        utterance is still open (a released key's tail is being recorded)."""
        return self.active or self.speaking

    @property
    def stage(self) -> Stage:
        if self.typing:
            return Stage.TYPING
        if self.speaking:
            return Stage.SPEAKING
        if self.outstanding:
            return Stage.FINALIZING
        if self.active:
            return Stage.LISTENING
        return Stage.IDLE


MODE_BY_NAME = {
    "hands_free": Mode.HANDS_FREE,
    "push_to_talk": Mode.PUSH_TO_TALK,
    "toggle": Mode.TOGGLE,
}


def segmenter_config(settings: Settings) -> SegmenterConfig:
    return SegmenterConfig(
        threshold=settings.vad_threshold,
        pre_roll_ms=settings.pre_roll_ms,
        min_silence_ms=settings.min_silence_ms,
        tail_ms=settings.tail_ms,
        release_tail_ms=settings.release_tail_ms,
    )


class FinalTyper(Protocol):
    """Types final text into the focused window (desktop/output)."""

    def type_final(self, text: str) -> object: ...


@dataclass(frozen=True)
class HistoryEntry:
    when: float  # time.time()
    text: str
    latency_ms: float | None  # end of speech → text typed
    typed: bool


class _Bridge(QObject):
    """Carries callbacks from the audio and client threads to the Qt thread."""

    segment = Signal(object)
    client = Signal(object)
    audio_error = Signal(object)  # the audio thread stopped with this exception


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
    ) -> None:
        super().__init__()
        self.settings = settings
        self._typer = typer
        self._source_factory = source_factory
        self._detector_factory = detector_factory
        self._clock = clock
        self.facts = DictationFacts()
        self.history: list[HistoryEntry] = []
        self._bridge = _Bridge()
        self._bridge.segment.connect(self._on_segment)
        self._bridge.client.connect(self._on_client)
        self._bridge.audio_error.connect(self._on_audio_error)
        self._pipeline: AudioPipeline | None = None
        self._speech_ended_at: dict[int, float] = {}
        self._hands_free = False  # hands-free switched on from the tray
        self.client = self._make_client(settings)

    # ---------------------------------------------------------------- lifecycle

    def _make_client(self, settings: Settings) -> DictationClient:
        return DictationClient(
            settings.server_url,
            self._bridge.client.emit,
            token=settings.token or None,
            ca_file=settings.ca_file or None,
            # off in the settings still lets TINGXIE_LOG_TRANSCRIPTS=1 turn it on
            log_transcripts=settings.log_transcripts or None,
            language=settings.language or None,
            context=settings.context,
        )

    def start(self) -> None:
        self.client.start()
        if self.mode is not Mode.HANDS_FREE:
            self._ensure_pipeline()  # warm microphone: pre-roll from before the key press

    def shutdown(self) -> None:
        self._stop_pipeline()
        self.client.close()

    @property
    def mode(self) -> Mode:
        """The segmenter mode now: hands-free while switched on from the tray."""
        if self._hands_free:
            return Mode.HANDS_FREE
        return MODE_BY_NAME.get(self.settings.mode, Mode.PUSH_TO_TALK)

    def _ensure_pipeline(self) -> bool:
        if self._pipeline is not None and self._pipeline.running:
            return True
        try:
            source = self._source_factory(self.settings)
            detector = self._detector_factory()
        except Exception as exc:  # no PortAudio, no device, no VAD model...
            log.exception("cannot open the microphone")
            self.problem.emit(f"Cannot open the microphone: {exc}")
            return False
        segmenter = Segmenter(segmenter_config(self.settings), self.mode)
        self._pipeline = AudioPipeline(
            source,
            segmenter,
            detector,
            self._bridge.segment.emit,
            on_error=self._bridge.audio_error.emit,
        )
        self._pipeline.start()
        return True

    def _stop_pipeline(self) -> None:
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None

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
        if audio_changed and self._pipeline is not None:
            self._stop_pipeline()  # reopens below with the new device and VAD settings
            self._set(speaking=False)
        wants_microphone = self.mode is not Mode.HANDS_FREE or self._hands_free
        if wants_microphone and not self._ensure_pipeline():
            self._hands_free = False
            self._set(active=False)

    # ---------------------------------------------------------------- commands

    def _set(self, **changes: object) -> None:
        before, was_recording = self.facts.stage, self.facts.recording
        self.facts = replace(self.facts, **changes)  # type: ignore[arg-type]
        if self.facts.recording != was_recording:
            self.recording_changed.emit(self.facts.recording)
        if self.facts.stage is not before:
            self.stage_changed.emit(self.facts.stage)

    @Slot()
    def toggle_dictation(self) -> None:
        """Tray click: hands-free dictation on/off, whatever the configured mode."""
        if self._hands_free:
            self._hands_free = False
            configured = self.mode
            if configured is Mode.HANDS_FREE or self._pipeline is None:
                self._stop_pipeline()
            else:
                self._pipeline.set_mode(configured)  # back to the warm push-to-talk mic
            self._set(active=False, speaking=False)
            return
        self._hands_free = True
        if self._pipeline is not None and self._pipeline.running:
            self._pipeline.set_mode(Mode.HANDS_FREE)
        elif not self._ensure_pipeline():
            self._hands_free = False
            return
        self._set(active=True)

    @Slot()
    def talk_pressed(self) -> None:
        if self.mode is Mode.HANDS_FREE or not self._ensure_pipeline():
            return
        assert self._pipeline is not None
        self._pipeline.press()
        self._set(active=True)

    @Slot()
    def talk_released(self) -> None:
        if self._pipeline is None or self.mode is Mode.HANDS_FREE:
            return
        self._pipeline.release()
        self._set(active=False)

    @Slot()
    def talk_cancelled(self) -> None:
        """The talk key turned out to be part of a shortcut: drop what it recorded."""
        if self._pipeline is None or self.mode is Mode.HANDS_FREE:
            return
        self._pipeline.cancel()
        self._pipeline.release()
        self._set(active=False)

    @Slot()
    def talk_toggled(self) -> None:
        if self.facts.active:
            self.talk_released()
        else:
            self.talk_pressed()

    # ---------------------------------------------------------------- events

    @Slot(object)
    def _on_segment(self, event: Event) -> None:
        self.client.submit(event)
        if isinstance(event, UtteranceStarted):
            self._set(speaking=True)
        elif isinstance(event, UtteranceEnded):
            self._speech_ended_at[event.utterance_id] = event.detected_at or self._clock()
            outstanding = self.facts.outstanding
            if event.reason.value != "cancelled":
                outstanding = outstanding | {event.utterance_id}
            self._set(speaking=False, outstanding=outstanding)
        elif isinstance(event, UtteranceDropped):
            self._set(speaking=False)

    @Slot(object)
    def _on_audio_error(self, error: BaseException) -> None:
        self.problem.emit(f"Audio stopped: {error}")
        self._pipeline = None
        self._set(active=False, speaking=False)

    @Slot(object)
    def _on_client(self, event: ClientEvent) -> None:
        if isinstance(event, PartialText):
            self.partial.emit(event.stable, event.unstable)
        elif isinstance(event, FinalText):
            self._type_final(event)
        elif isinstance(event, UtteranceFailed):
            self._set(outstanding=self.facts.outstanding - {event.utterance_id})
            self.problem.emit(f"Recognition failed: {event.message}")
        elif isinstance(event, StateChanged):
            self.server_state.emit(event.state, event.detail)
            if event.state is ClientState.AUTH_FAILED:
                self.problem.emit(f"The server refused the token: {event.detail}")

    def _type_final(self, event: FinalText) -> None:
        text = event.text.strip()
        typed = False
        if text:
            self._set(typing=True)
            try:
                self._typer.type_final(text)
                typed = True
            except Exception as exc:
                log.exception("typing failed")
                self.problem.emit(f"Could not type the text: {exc}")
            finally:
                self._set(typing=False)
        now = self._clock()
        event.timeline.typed = now if typed else None
        ended = self._speech_ended_at.pop(event.utterance_id, None)
        latency = (now - ended) * 1000 if ended is not None and typed else None
        entry = HistoryEntry(time.time(), text, latency, typed)
        if text:
            self.history.append(entry)
            del self.history[:-200]
        log.info(
            "final %d: %s (%s)",
            event.utterance_id,
            text_for_log(text, self.client.log_transcripts),
            f"{latency:.0f} ms end of speech → typed" if latency is not None else "not typed",
        )
        self._set(outstanding=self.facts.outstanding - {event.utterance_id})
        self.final.emit(entry)

    def retype(self, text: str) -> None:
        """History: type an earlier text again."""
        self._typer.type_final(text)
