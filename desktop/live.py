"""Live dictation without a GUI: source → VAD → segmenter → streaming client → callback.

The composition used by ``tingxie-cli --mic`` (and ``--vad`` for WAV files); the tray
app wires the same pieces to its own widgets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from desktop.audio.pipeline import AudioPipeline
from desktop.audio.segmenter import Event, Mode, Segmenter, SegmenterConfig, UtteranceStarted
from desktop.audio.source import AudioSource
from desktop.audio.vad import SileroOnnxVad
from desktop.streaming import (
    ClientEvent,
    DictationClient,
    FinalText,
    MachineConfig,
    UtteranceCancelled,
    UtteranceFailed,
)

log = logging.getLogger(__name__)


@dataclass
class LiveOptions:
    url: str
    token: str | None = None
    language: str | None = None
    context: str = ""
    mode: Mode = Mode.HANDS_FREE
    segmenter: SegmenterConfig | None = None
    ca_file: str | None = None  # trusted for wss:// instead of the system's CAs
    machine: MachineConfig | None = None  # deadlines and bounds of the client's ledger


class LiveDictation:
    """Owns the audio thread and the client thread of one dictation run."""

    def __init__(
        self, source: AudioSource, options: LiveOptions, on_event: Callable[[ClientEvent], None]
    ) -> None:
        self._on_event = on_event
        self._announced = 0
        self._done = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.client = DictationClient(
            options.url,
            self._client_event,
            token=options.token,
            ca_file=options.ca_file,
            language=options.language,
            context=options.context,
            machine=options.machine,
        )
        self.pipeline = AudioPipeline(
            source,
            Segmenter(options.segmenter, options.mode),
            SileroOnnxVad(),
            self._segment_event,
        )

    def _segment_event(self, event: Event) -> None:
        if isinstance(event, UtteranceStarted):
            with self._lock:
                self._announced += 1
        self.client.submit(event)

    def _client_event(self, event: ClientEvent) -> None:
        if isinstance(event, (FinalText, UtteranceFailed, UtteranceCancelled)):
            with self._lock:
                self._done += 1
                self._idle.notify_all()
        self._on_event(event)

    def start(self) -> None:
        self.client.start()
        self.pipeline.start()

    def wait_source_end(self, timeout: float | None = None) -> bool:
        return self.pipeline.wait(timeout)

    def wait_all_finals(self, timeout: float) -> bool:
        """After the source ended: wait until every utterance has its outcome (final,
        failed or cancelled; the client's deadlines guarantee one)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._done < self._announced:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self) -> None:
        self.pipeline.stop()
        self.client.close()
