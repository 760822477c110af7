"""Start and stop cues: a short tone when recording starts and when it stops (optional).

When they play (the coordinator's ``recording_changed``): *start* as dictation turns on
(tray click, talk key pressed), *stop* once the microphone no longer feeds the server:
after the key's release tail has been recorded and the utterance closed, so the stop
cue is never part of what is recognised. The start cue plays as recording starts; it is
a soft 110 ms tone that Silero VAD does not take for speech (tests/app/test_cues.py), so
in hands-free mode it never opens an utterance. With loudspeakers in push-to-talk it can
reach the microphone and be sent ahead of the first word; headphones avoid that.

Sounds are played on a worker thread, so neither the Qt thread nor the audio thread ever
waits for the sound device.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from desktop.resources import resource_path

log = logging.getLogger(__name__)


class Cue(enum.Enum):
    START = "start"
    STOP = "stop"


@dataclass(frozen=True)
class Sound:
    samples: npt.NDArray[np.int16] = field(repr=False)  # mono
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


class CueFormatError(ValueError):
    pass


def read_sound(path: Path) -> Sound:
    """A mono 16-bit PCM WAV file."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise CueFormatError(f"{path}: cues must be mono 16-bit PCM")
            frames = wav.readframes(wav.getnframes())
            rate = wav.getframerate()
    except (wave.Error, EOFError) as exc:
        raise CueFormatError(f"{path}: not a WAV file ({exc})") from exc
    return Sound(np.frombuffer(frames, dtype="<i2").astype(np.int16), rate)


def cue_path(cue: Cue) -> Path:
    return resource_path("sounds", f"{cue.value}.wav")


def play_on_default_device(sound: Sound) -> None:
    """Start playback and return (sounddevice plays from its own callback thread)."""
    import sounddevice  # type: ignore[import-untyped]

    sounddevice.play(sound.samples, sound.rate)


Player = Callable[[Sound], None]


class CuePlayer:
    """Plays the cues when enabled; ``enabled`` follows the ``sound_cues`` setting."""

    def __init__(
        self,
        enabled: bool,
        play: Player = play_on_default_device,
        load: Callable[[Cue], Sound] = lambda cue: read_sound(cue_path(cue)),
    ) -> None:
        self.enabled = enabled
        self._play = play
        self._load = load
        self._sounds: dict[Cue, Sound] = {}
        self._queue: queue.SimpleQueue[Sound | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    def on_recording_changed(self, recording: bool) -> None:
        self.play(Cue.START if recording else Cue.STOP)

    def play(self, cue: Cue) -> None:
        """Queue the cue and return at once; does nothing while disabled."""
        if not self.enabled:
            return
        try:
            sound = self._sounds.get(cue) or self._sounds.setdefault(cue, self._load(cue))
        except (OSError, CueFormatError) as exc:
            log.warning("cannot load the %s cue: %s", cue.value, exc)
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="sound-cues", daemon=True)
            self._worker.start()
        self._queue.put(sound)

    def close(self, timeout: float = 1.0) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout)
            self._worker = None

    def _run(self) -> None:
        while (sound := self._queue.get()) is not None:
            try:
                self._play(sound)
            except Exception as exc:  # no output device, PortAudio missing: cues are optional
                log.warning("cannot play a sound cue: %s", exc)
