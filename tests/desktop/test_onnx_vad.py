"""The app's VAD (Silero's ONNX model on onnxruntime, no torch) against the reference:
the same model through the silero-vad package and torch, on real recordings."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from desktop.audio.segmenter import AudioChunk, Event, Segmenter
from desktop.audio.vad import (
    VAD_CHUNK_SAMPLES,
    SileroOnnxVad,
    SileroVad,
    SpeechDetector,
    find_silero_onnx,
)
from tests.desktop.helpers import room_noise, speech
from tests.desktop.test_real_speech import ALL


@pytest.fixture(scope="module")
def onnx_vad() -> SileroOnnxVad:
    return SileroOnnxVad()


@pytest.fixture(scope="module")
def torch_vad() -> SileroVad:
    return SileroVad(onnx=False)  # TorchScript: a second runtime, not the same ONNX file


def probabilities(vad: SpeechDetector, audio: np.ndarray) -> np.ndarray:
    vad.reset()
    n = len(audio) // VAD_CHUNK_SAMPLES
    chunks = audio[: n * VAD_CHUNK_SAMPLES].reshape(n, VAD_CHUNK_SAMPLES)
    return np.array([vad.speech_probability(c) for c in chunks])


@pytest.mark.parametrize("name", ALL)
def test_probabilities_match_the_torch_model(
    onnx_vad: SileroOnnxVad, torch_vad: SileroVad, name: str
) -> None:
    audio = speech(name)
    ours, reference = probabilities(onnx_vad, audio), probabilities(torch_vad, audio)
    assert ours.shape == reference.shape and len(ours) > 30
    assert ours.max() > 0.9 and ours.min() < 0.1, "a recording has speech and pauses"
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4)


def test_the_context_carried_between_chunks_is_what_makes_it_match(
    onnx_vad: SileroOnnxVad, torch_vad: SileroVad
) -> None:
    """Feeding each chunk without the previous chunk's last 64 samples is a plausible
    mistake; it shows up far above the tolerance used above."""
    audio = speech("ps_0870")
    reference = probabilities(torch_vad, audio)
    onnx_vad.reset()
    without_context = []
    for i in range(len(reference)):
        chunk = audio[i * VAD_CHUNK_SAMPLES : (i + 1) * VAD_CHUNK_SAMPLES]
        without_context.append(onnx_vad.speech_probability(chunk))
        onnx_vad._context[:] = 0
    assert np.abs(np.array(without_context) - reference).max() > 0.05


def test_reset_starts_the_stream_afresh(onnx_vad: SileroOnnxVad) -> None:
    audio = speech("ps_cards_001")
    first = probabilities(onnx_vad, audio)
    onnx_vad.speech_probability(audio[:VAD_CHUNK_SAMPLES])  # leave some state behind
    np.testing.assert_array_equal(probabilities(onnx_vad, audio), first)


def segment(vad: SpeechDetector, audio: np.ndarray) -> list[Event]:
    vad.reset()
    segmenter, events = Segmenter(), []
    for i in range(len(audio) // VAD_CHUNK_SAMPLES):
        chunk = audio[i * VAD_CHUNK_SAMPLES : (i + 1) * VAD_CHUNK_SAMPLES]
        events += segmenter.feed(chunk, vad.speech_probability(chunk))
    return events + segmenter.flush()


def test_segmenter_cuts_the_same_utterances(onnx_vad: SileroOnnxVad, torch_vad: SileroVad) -> None:
    parts = [room_noise(1.0, seed=0)]
    for k, name in enumerate(ALL):
        parts += [speech(name), room_noise(1.2, seed=k + 1)]
    audio = np.concatenate(parts)

    ours, reference = segment(onnx_vad, audio), segment(torch_vad, audio)

    boundaries = [e for e in ours if not isinstance(e, AudioChunk)]
    assert len(boundaries) >= 2 * len(ALL), "every recording opens and closes an utterance"
    assert ours == reference  # the same events, with bit-identical audio


def test_wrong_chunk_size_is_refused(onnx_vad: SileroOnnxVad) -> None:
    with pytest.raises(ValueError, match="512"):
        onnx_vad.speech_probability(np.zeros(480, dtype=np.int16))


def test_loads_without_torch_or_the_silero_package() -> None:
    """The packaged app ships neither: the model file is found without importing them."""
    code = (
        "import sys\n"
        "from desktop.audio.vad import SileroOnnxVad\n"
        "import numpy as np\n"
        "p = SileroOnnxVad().speech_probability(np.zeros(512, dtype=np.int16))\n"
        "assert 0.0 <= p < 0.5, p\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'silero_vad')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert find_silero_onnx().name == "silero_vad.onnx"
