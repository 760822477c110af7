"""Speech detection: the ``SpeechDetector`` seam and its Silero VAD implementation.

The segmenter only needs "how likely is this 32 ms chunk speech"; keeping that behind a
protocol lets the pure segmentation logic be tested with scripted probabilities.
torch and silero_vad are imported when a ``SileroVad`` is built, never at import time.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

#: Silero VAD (v5/v6) takes exactly this many samples per call at 16 kHz.
VAD_CHUNK_SAMPLES = 512
VAD_SAMPLE_RATE = 16_000


@runtime_checkable
class SpeechDetector(Protocol):
    """Gives a speech probability in [0, 1] for consecutive 512-sample int16 chunks.

    Detectors may be stateful (Silero is recurrent): feed chunks in stream order and call
    ``reset`` when the stream is discontinuous.
    """

    def speech_probability(self, chunk: npt.NDArray[np.int16]) -> float: ...

    def reset(self) -> None: ...


class VadUnavailableError(RuntimeError):
    """silero-vad (or torch) is not installed or its model cannot be loaded."""


class SileroVad:
    """Silero VAD model shipped inside the ``silero-vad`` package (no download).

    ``onnx=None`` picks ONNX when onnxruntime is installed (faster per chunk), else the
    TorchScript model. Importing silero_vad sets ``torch.set_num_threads(1)`` for the whole
    process; that is what we want on the audio thread anyway.
    """

    def __init__(self, onnx: bool | None = None) -> None:
        if onnx is None:
            onnx = importlib.util.find_spec("onnxruntime") is not None
        try:
            import torch
            from silero_vad import load_silero_vad  # type: ignore[import-untyped]
        except ImportError as exc:
            raise VadUnavailableError(
                "Silero VAD needs the 'silero-vad' and 'torch' packages "
                "(pip install 'tingxie[desktop]')"
            ) from exc
        self._torch: Any = torch
        self._model: Any = load_silero_vad(onnx=onnx)
        self.onnx = onnx
        log.debug("loaded Silero VAD (%s)", "onnx" if onnx else "torchscript")

    def speech_probability(self, chunk: npt.NDArray[np.int16]) -> float:
        if chunk.shape != (VAD_CHUNK_SAMPLES,):
            raise ValueError(
                f"Silero VAD needs chunks of {VAD_CHUNK_SAMPLES} samples, got {chunk.shape}"
            )
        audio = chunk.astype(np.float32) / 32768.0
        with self._torch.inference_mode():
            prob = self._model(self._torch.from_numpy(audio), VAD_SAMPLE_RATE)
        return float(prob.item())

    def reset(self) -> None:
        self._model.reset_states()


class ScriptedDetector:
    """A fake detector that replays given probabilities (tests, simulations).

    After the script runs out it keeps returning ``default``.
    """

    def __init__(self, probabilities: Iterable[float], default: float = 0.0) -> None:
        self._script: Iterator[float] = iter(probabilities)
        self.default = default
        self.calls = 0

    def speech_probability(self, chunk: npt.NDArray[np.int16]) -> float:
        self.calls += 1
        return next(self._script, self.default)

    def reset(self) -> None:
        pass
