"""Growing buffer of one utterance's audio, appended from wire frames, and the
server-wide budget all such buffers draw from."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from protocol.audio import SAMPLE_RATE, SAMPLE_WIDTH
from server.engine.base import AudioArray

_INT16_SCALE = np.float32(1.0 / 32768.0)


class AudioBudget:
    """Bytes of audio all open utterances may hold together (int16, 2 bytes a sample).

    What an attacker can make the server keep is bounded by this number, not by the
    number of connections times the per-utterance limit.
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        #: Most bytes in use since the owner last reset it (to see how much was freed).
        self.high_water_bytes = 0

    def try_reserve(self, n_bytes: int) -> bool:
        if self.used_bytes + n_bytes > self.limit_bytes:
            return False
        self.used_bytes += n_bytes
        self.high_water_bytes = max(self.high_water_bytes, self.used_bytes)
        return True

    def release(self, n_bytes: int) -> None:
        self.used_bytes = max(0, self.used_bytes - n_bytes)


class AudioBudgetExceeded(Exception):
    """The server-wide audio budget has no room for a frame."""


class AudioBuffer:
    """s16le frames in, kept as int16 (the wire format, half the size of float32).

    :meth:`samples` converts (a range of) it to float32 for the model; that is the
    only conversion and the only copy made of the audio. Capacity doubles as needed
    (amortised O(1) appends) but never beyond ``max_samples``, so a full buffer holds at
    most twice what it was sent before the limit and exactly the limit at it. A frame with an odd
    number of bytes is legal on the wire (frames are not sample-aligned); the odd byte
    waits for the next frame.

    Bytes are reserved in ``budget`` (if any) as they arrive and returned by
    :meth:`release`; a frame that does not fit raises :class:`AudioBudgetExceeded`
    and is not kept.
    """

    def __init__(
        self,
        initial_seconds: float = 2.0,
        *,
        max_samples: int | None = None,
        budget: AudioBudget | None = None,
    ) -> None:
        first = int(initial_seconds * SAMPLE_RATE)
        if max_samples is not None:
            first = min(first, max_samples)
        self._data: npt.NDArray[np.int16] = np.zeros(first, dtype=np.int16)
        self._max_samples = max_samples
        self._n = 0
        self._carry = b""
        self._raw_bytes = 0
        self._budget = budget
        self._reserved = 0

    def append(self, frame: bytes) -> None:
        if self._budget is not None and frame:
            if not self._budget.try_reserve(len(frame)):
                raise AudioBudgetExceeded(
                    f"server audio budget of {self._budget.limit_bytes} bytes is in use"
                )
            self._reserved += len(frame)
        self._raw_bytes += len(frame)
        if self._carry:
            frame = self._carry + frame
        whole = len(frame) - len(frame) % SAMPLE_WIDTH
        self._carry = frame[whole:]
        if whole == 0:
            return
        samples = np.frombuffer(frame, dtype="<i2", count=whole // SAMPLE_WIDTH)
        needed = self._n + len(samples)
        if needed > len(self._data):
            size = max(needed, 2 * len(self._data))
            if self._max_samples is not None:
                size = max(needed, min(size, self._max_samples))
            grown = np.zeros(size, dtype=np.int16)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n : needed] = samples
        self._n = needed

    def samples(self, start: int = 0, end: int | None = None) -> AudioArray:
        """Audio ``[start:end]`` so far (default: all) as float32 in [-1, 1): a new array
        the caller owns. Only the range asked for is converted."""
        stop = self._n if end is None else max(0, min(end, self._n))
        out = self._data[max(0, start) : stop].astype(np.float32)
        out *= _INT16_SCALE  # exact: a power of two
        return out

    def release(self) -> None:
        """Drop the audio and give its bytes back to the budget (idempotent)."""
        if self._budget is not None:
            self._budget.release(self._reserved)
        self._reserved = 0
        self._data = np.zeros(0, dtype=np.int16)
        self._n = 0
        self._carry = b""

    @property
    def n_samples(self) -> int:
        return self._n

    @property
    def raw_bytes(self) -> int:
        return self._raw_bytes

    @property
    def capacity_bytes(self) -> int:
        """Bytes the buffer holds allocated (for memory accounting and tests)."""
        return int(self._data.nbytes)

    @property
    def seconds(self) -> float:
        return self._n / SAMPLE_RATE
