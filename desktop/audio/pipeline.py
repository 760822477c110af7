"""The audio thread: source → 512-sample chunks → VAD → segmenter → ``on_event``.

Thin on purpose: all decisions live in the pure ``Segmenter``. Key presses and mode
changes arrive from other threads and are queued, then applied between chunks on the
audio thread, so the segmenter is only ever touched by one thread.

``on_event`` runs on the audio thread; it must be quick (hand the event to the client's
asyncio loop with ``call_soon_threadsafe`` or a queue, don't do network I/O in it). The
tray app hands every event to the client from here and only an utterance's lifecycle
events (started, ended, dropped) to the Qt thread: audio never hops through Qt.
``UtteranceStarted`` and ``UtteranceEnded`` arrive stamped with ``time.monotonic()``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from desktop.audio.segmenter import Event, Mode, Segmenter, stamp
from desktop.audio.source import AudioSource, EndOfStream, Int16Array
from desktop.audio.vad import VAD_CHUNK_SAMPLES, SpeechDetector

log = logging.getLogger(__name__)

__all__ = ["AudioPipeline", "PipelineStats"]


@dataclass
class PipelineStats:
    chunks: int = 0
    vad_seconds: float = 0.0  # time spent in the detector (thread CPU-bound)
    max_vad_seconds: float = 0.0

    @property
    def vad_ms_per_chunk(self) -> float:
        return 1000 * self.vad_seconds / self.chunks if self.chunks else 0.0


class AudioPipeline:
    def __init__(
        self,
        source: AudioSource,
        segmenter: Segmenter,
        detector: SpeechDetector,
        on_event: Callable[[Event], None],
        *,
        on_error: Callable[[BaseException], None] | None = None,
        on_probability: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        read_timeout_s: float = 0.1,
    ) -> None:
        self.source = source
        self.segmenter = segmenter
        self.detector = detector
        self.on_event = on_event
        self.on_error = on_error
        self.on_probability = on_probability  # e.g. a level/VAD meter in the overlay
        self.clock = clock
        self.read_timeout_s = read_timeout_s
        self.stats = PipelineStats()
        self.error: BaseException | None = None
        self._commands: queue.SimpleQueue[Callable[[], list[Event]]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- control (any thread) -----------------------------------------------------------

    def start(self) -> None:
        """Run the pipeline on a new daemon thread."""
        if self._thread is not None:
            raise RuntimeError("pipeline already started")
        self._thread = threading.Thread(target=self.run, name="tingxie-audio", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop capturing; an open utterance ends with reason STREAM_END."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("audio thread did not stop within %s s", timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (end of a file source); True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def press(self) -> None:
        self._commands.put(self.segmenter.press)

    def release(self) -> None:
        self._commands.put(self.segmenter.release)

    def toggle(self) -> None:
        self._commands.put(self.segmenter.toggle)

    def cancel(self) -> None:
        self._commands.put(self.segmenter.cancel)

    def tap(self) -> None:
        """The key was released after a press too short to be a hold: keep what it
        recorded if the VAD heard speech in it, otherwise drop it. The segmenter judges it
        at the end of the release tail, so blocks the device captured during the press but
        this thread had not read yet when the tap arrived still count."""
        self._commands.put(self.segmenter.tap)

    def set_mode(self, mode: Mode) -> None:
        self._commands.put(lambda: self.segmenter.set_mode(mode))

    # ---- the loop (audio thread) --------------------------------------------------------

    def run(self) -> None:
        """Blocking loop: until ``stop()`` or the end of the source."""
        pending = np.zeros(0, dtype=np.int16)
        try:
            self.detector.reset()
            self.source.start()
            while not self._stop.is_set():
                self._run_commands()
                try:
                    block = self.source.read(timeout=self.read_timeout_s)
                except EndOfStream:
                    break
                if block is None:
                    continue
                pending = np.concatenate((pending, block)) if len(pending) else block
                n = len(pending) // VAD_CHUNK_SAMPLES * VAD_CHUNK_SAMPLES
                for i in range(0, n, VAD_CHUNK_SAMPLES):
                    self._process(pending[i : i + VAD_CHUNK_SAMPLES])
                pending = pending[n:]
            self._run_commands()
            # A partial last chunk (end of a file) still belongs to the utterance.
            if len(pending):
                self._deliver(self.segmenter.feed(pending, 0.0))
            self._deliver(self.segmenter.flush())
        except Exception as exc:
            self.error = exc
            log.exception("audio pipeline failed")
            if self.on_error is not None:
                self.on_error(exc)
        finally:
            try:
                self.source.stop()
            except Exception:
                log.exception("stopping the audio source failed")

    def _process(self, chunk: Int16Array) -> None:
        t0 = time.perf_counter()
        prob = self.detector.speech_probability(chunk)
        dt = time.perf_counter() - t0
        st = self.stats
        st.chunks += 1
        st.vad_seconds += dt
        st.max_vad_seconds = max(st.max_vad_seconds, dt)
        if self.on_probability is not None:
            self.on_probability(prob)
        self._deliver(self.segmenter.feed(chunk, prob))

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            self._deliver(command())

    def _deliver(self, events: list[Event]) -> None:
        if not events:
            return
        now = self.clock()
        for event in events:
            self.on_event(stamp(event, now))
