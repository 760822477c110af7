"""Growing buffer of one utterance's audio, appended from wire frames."""

from __future__ import annotations

import numpy as np

from protocol.audio import SAMPLE_RATE, SAMPLE_WIDTH
from server.engine.base import AudioArray


class AudioBuffer:
    """s16le frames in, float32 samples out, without re-converting old audio.

    Capacity doubles as needed (amortised O(1) appends). A frame with an odd number
    of bytes is legal on the wire (frames are not sample-aligned); the odd byte waits
    for the next frame.
    """

    def __init__(self, initial_seconds: float = 10.0) -> None:
        self._data = np.zeros(int(initial_seconds * SAMPLE_RATE), dtype=np.float32)
        self._n = 0
        self._carry = b""
        self._raw_bytes = 0

    def append(self, frame: bytes) -> None:
        self._raw_bytes += len(frame)
        if self._carry:
            frame = self._carry + frame
        whole = len(frame) - len(frame) % SAMPLE_WIDTH
        self._carry = frame[whole:]
        if whole == 0:
            return
        samples = np.frombuffer(frame[:whole], dtype="<i2").astype(np.float32) / 32768.0
        needed = self._n + len(samples)
        if needed > len(self._data):
            grown = np.zeros(max(needed, 2 * len(self._data)), dtype=np.float32)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n : needed] = samples
        self._n = needed

    def samples(self) -> AudioArray:
        """All audio so far. A view: valid until the next append; copy to keep."""
        return self._data[: self._n]

    @property
    def n_samples(self) -> int:
        return self._n

    @property
    def raw_bytes(self) -> int:
        return self._raw_bytes

    @property
    def seconds(self) -> float:
        return self._n / SAMPLE_RATE
