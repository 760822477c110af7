"""The engine seam: what the server above the model is written against.

    connection → session → scheduler → engine → generator

- A :class:`Generator` runs prompts (audio + forced text prefix + limits) in batches.
  It knows the model and nothing about streaming.
- An :class:`Engine` owns the streaming policy. For every utterance it opens an
  :class:`EngineStream` that decides which audio and which prefix go into each decoding
  step, which part of the text is stable, and how the final is produced.
- The scheduler (server/scheduler.py) decides *when* requests reach the generator.
  Streams never call the generator directly: they hand the scheduler a *builder* that is
  called at dispatch time, so a queued partial step always uses the newest audio.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

AudioArray = npt.NDArray[np.float32]  # mono, 16 kHz, samples in [-1, 1]


class Priority(IntEnum):
    """Lower runs first: a final is never queued behind partial steps."""

    FINAL = 0
    PARTIAL = 1


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt for the model."""

    audio: AudioArray
    prefix: str = ""  # text the output is forced to start with (already committed)
    language: str | None = None  # None: the model detects it
    context: str = ""  # hotwords / domain text
    max_new_tokens: int = 256
    priority: Priority = Priority.PARTIAL


@dataclass(frozen=True)
class GenerationResult:
    """What the model produced for one request. ``text`` includes the prefix."""

    text: str
    language: str | None = None


class Generator(ABC):
    """Runs batches of prompts. Implementations: fake (tests, benchmarks),
    transformers, vLLM."""

    #: Short name for logs, ``/healthz`` and ``ready``.
    name: str = "generator"
    #: Largest batch the scheduler hands to :meth:`generate`.
    max_batch_size: int = 1
    #: How many :meth:`generate` calls may run at once (continuous-batching backends
    #: take many single-request calls; micro-batching ones take one batch at a time).
    max_concurrent_batches: int = 1
    #: Whether cancelling a running :meth:`generate` call frees the model's work.
    supports_abort: bool = False
    #: Model identifier for ``ready`` and ``/healthz``.
    model: str = ""

    async def load(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Load the model. Called once before serving; may take minutes."""

    @abstractmethod
    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Run ``batch`` (at most :attr:`max_batch_size` requests) without blocking the
        event loop; return one result per request, in order."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release the model."""


RequestBuilder = Callable[[], GenerationRequest]
#: The scheduler's submit function as streams see it.
Runner = Callable[[RequestBuilder, Priority], Awaitable[GenerationResult]]


class AudioView(Protocol):
    """Read-only view of an utterance's audio so far."""

    def samples(self, start: int = 0, end: int | None = None) -> AudioArray:
        """Samples ``[start:end]`` (default: all so far) as a new array the caller owns:
        never aliased to storage that later audio is written into, so it goes to the
        generator as it is, without another copy."""
        ...

    @property
    def n_samples(self) -> int: ...


@dataclass(frozen=True)
class StreamOptions:
    language: str | None = None
    context: str = ""


@dataclass(frozen=True)
class PartialText:
    stable: str  # will not change any more
    unstable: str  # may still change

    @property
    def text(self) -> str:
        return self.stable + self.unstable


@dataclass(frozen=True)
class FinalText:
    text: str
    language: str | None = None


class EngineStream(ABC):
    """Streaming state of one utterance."""

    @abstractmethod
    async def step(self, audio: AudioView, run: Runner) -> PartialText | None:
        """One partial decoding step over the audio so far (``None``: nothing new)."""

    @abstractmethod
    async def finish(self, audio: AudioView, run: Runner) -> FinalText:
        """The final text of the whole utterance."""


class Engine(ABC):
    """A streaming policy on top of a generator."""

    name: str = "engine"

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    @abstractmethod
    def open_stream(self, options: StreamOptions) -> EngineStream:
        """Streaming state for a new utterance."""
