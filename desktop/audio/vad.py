"""Speech detection: the ``SpeechDetector`` seam and its Silero VAD implementations.

The segmenter only needs "how likely is this 32 ms chunk speech"; keeping that behind a
protocol lets the pure segmentation logic be tested with scripted probabilities.

``SileroOnnxVad`` is what the app uses: Silero's ONNX model run by onnxruntime, without
torch (which would add hundreds of MB to the packaged app). ``SileroVad`` runs the same
model through the ``silero-vad`` package and torch; tests use it as the reference.
Heavy imports happen when a detector is built, never at import time.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

#: Silero VAD (v5/v6) takes exactly this many samples per call at 16 kHz.
VAD_CHUNK_SAMPLES = 512
VAD_SAMPLE_RATE = 16_000
#: Silero v5/v6 sees each chunk together with the last 64 samples of the previous one.
VAD_CONTEXT_SAMPLES = 64
SILERO_ONNX_FILE = "silero_vad.onnx"


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


def find_silero_onnx() -> Path:
    """The ONNX model: the bundled copy in the packaged app, else the one in the
    ``silero-vad`` package's data folder, found without importing that package (its
    ``__init__`` imports torch)."""
    from desktop.resources import BUNDLED_MODELS, frozen_root

    candidates: list[Path] = []
    frozen = frozen_root()
    if frozen is not None:
        candidates.append(frozen / BUNDLED_MODELS / SILERO_ONNX_FILE)
    spec = importlib.util.find_spec("silero_vad")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "data" / SILERO_ONNX_FILE for p in spec.submodule_search_locations]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise VadUnavailableError(
        f"cannot find {SILERO_ONNX_FILE} (install the 'silero-vad' package: "
        "pip install 'tingxie[desktop]')"
    )


class SileroOnnxVad:
    """Silero VAD v5/v6 on onnxruntime: one 512-sample chunk per call, stateful.

    The model is recurrent: each call takes the previous call's state and, in front of
    the new chunk, the last 64 samples of the previous chunk (zeros after a reset).
    One thread per session: it runs on the audio thread, next to nothing else.
    """

    def __init__(self, model_path: Path | None = None) -> None:
        try:
            import onnxruntime  # type: ignore[import-untyped]
        except ImportError as exc:
            raise VadUnavailableError(
                "the VAD needs the 'onnxruntime' package (pip install 'tingxie[desktop]')"
            ) from exc
        self.model_path = model_path or find_silero_onnx()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session: Any = onnxruntime.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own (non-public) error types
            raise VadUnavailableError(f"cannot load {self.model_path}: {exc}") from exc
        self._sample_rate = np.array(VAD_SAMPLE_RATE, dtype=np.int64)
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(VAD_CONTEXT_SAMPLES, dtype=np.float32)
        log.debug("loaded Silero VAD (onnxruntime) from %s", self.model_path)

    def speech_probability(self, chunk: npt.NDArray[np.int16]) -> float:
        if chunk.shape != (VAD_CHUNK_SAMPLES,):
            raise ValueError(
                f"Silero VAD needs chunks of {VAD_CHUNK_SAMPLES} samples, got {chunk.shape}"
            )
        audio = chunk.astype(np.float32) / 32768.0
        frame = np.concatenate([self._context, audio])[np.newaxis, :]
        probability, self._state = self._session.run(
            None, {"input": frame, "state": self._state, "sr": self._sample_rate}
        )
        self._context = audio[-VAD_CONTEXT_SAMPLES:]
        return float(probability[0, 0])

    def reset(self) -> None:
        self._state = np.zeros_like(self._state)
        self._context = np.zeros_like(self._context)


class SileroVad:
    """Silero VAD through the ``silero-vad`` package and torch (the reference).

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
