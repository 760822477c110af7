"""The audio path from buffer to generator makes one float32 array per request, no more
(pure: a real AudioBuffer, engines on a recording generator, tracemalloc for memory)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from server.audio_buffer import AudioBuffer
from server.engine.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    StreamOptions,
)
from server.engine.full_decode import FullDecodeEngine
from server.engine.qwen.policy import WindowedConfig
from server.engine.qwen.windowed import WindowedEngine
from tests.qwen.helpers import SR, ByteText, direct_runner, noise, speechlike

SECONDS = 30.0
FLOAT_BYTES = int(SECONDS * SR) * 4  # the utterance as float32


class MeasuringGenerator(Generator):
    """Records each request and the bytes traced when it reached the model."""

    name = "measuring"

    def __init__(self) -> None:
        self.text = ByteText()
        self.requests: list[GenerationRequest] = []
        self.traced_at_generate: list[int] = []

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.traced_at_generate.append(tracemalloc.get_traced_memory()[0])
        self.requests.extend(batch)
        return [GenerationResult(text=r.prefix + "words", language="English") for r in batch]


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def buffer_of(samples: np.ndarray) -> AudioBuffer:
    buffer = AudioBuffer()
    buffer.append((samples * 32768.0).astype("<i2").tobytes())
    return buffer


def test_a_range_is_converted_alone_and_owned_by_the_caller() -> None:
    buffer = buffer_of(noise(3.0))
    whole = buffer.samples()
    part = buffer.samples(SR, 2 * SR)
    np.testing.assert_array_equal(part, whole[SR : 2 * SR])
    np.testing.assert_array_equal(buffer.samples(2 * SR), whole[2 * SR :])
    assert buffer.samples(2 * SR, 10 * SR).shape == (SR,)  # clamped to what arrived
    assert buffer.samples(5 * SR).shape == (0,)
    part[:] = 1.0  # the caller's own array: the buffer is unchanged
    np.testing.assert_array_equal(buffer.samples(SR, 2 * SR), whole[SR : 2 * SR])


async def test_full_decode_hands_the_model_one_array_per_request(traced: None) -> None:
    gen = MeasuringGenerator()
    stream = FullDecodeEngine(gen).open_stream(StreamOptions())
    buffer = buffer_of(noise(SECONDS))
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    await stream.step(buffer, direct_runner(gen))
    peak = tracemalloc.get_traced_memory()[1] - before
    np.testing.assert_array_equal(gen.requests[0].audio, buffer.samples())
    # One float32 array of the utterance at most (a copy of it made this 2x).
    assert peak < 1.25 * FLOAT_BYTES


async def test_a_windowed_final_holds_the_utterance_once_while_decoding(traced: None) -> None:
    gen = MeasuringGenerator()
    engine = WindowedEngine(gen, WindowedConfig(final_full_max_sec=60.0))
    stream = engine.open_stream(StreamOptions())
    buffer = buffer_of(noise(SECONDS))
    before = tracemalloc.get_traced_memory()[0]
    final = await stream.finish(buffer, direct_runner(gen))
    assert final.text == "words"
    (request,) = gen.requests
    np.testing.assert_array_equal(request.audio, buffer.samples())
    # While the model runs: the utterance once (finish's array), not once more per request.
    assert gen.traced_at_generate[0] - before < 1.25 * FLOAT_BYTES


async def test_windowed_partials_send_the_newest_audio_of_the_buffer() -> None:
    gen = MeasuringGenerator()
    stream = WindowedEngine(gen).open_stream(StreamOptions())
    audio = noise(4.0)
    buffer = buffer_of(audio[: 2 * SR])
    await stream.step(buffer, direct_runner(gen))
    buffer.append((audio[2 * SR :] * 32768.0).astype("<i2").tobytes())
    await stream.step(buffer, direct_runner(gen))
    first, second = gen.requests
    np.testing.assert_array_equal(first.audio, buffer.samples(0, 2 * SR))
    np.testing.assert_array_equal(second.audio, buffer.samples())


async def stream_steps(
    gen: MeasuringGenerator, audio: np.ndarray, config: WindowedConfig
) -> list[int]:
    """Steps every 1 s of appended audio; the bytes each step held while the model ran."""
    stream = WindowedEngine(gen, config).open_stream(StreamOptions())
    buffer = AudioBuffer()
    pcm = (audio * 32768.0).astype("<i2").tobytes()
    hop = 2 * SR  # bytes of 1 s
    held = []
    for end in range(hop, len(pcm) + 1, hop):
        buffer.append(pcm[end - hop : end])
        before = tracemalloc.get_traced_memory()[0]
        n_requests = len(gen.requests)
        await stream.step(buffer, direct_runner(gen))
        if len(gen.requests) > n_requests:
            held.append(gen.traced_at_generate[-1] - before)
    return held


async def test_a_windowed_partial_holds_its_segment_not_the_utterance(traced: None) -> None:
    config = WindowedConfig(segment_soft_sec=8.0, segment_max_sec=12.0)
    audio = speechlike(60.0, gaps=[(t, t + 0.4) for t in range(7, 60, 7)])
    await stream_steps(MeasuringGenerator(), audio, config)  # first use of numpy's parts
    gen = MeasuringGenerator()
    held = await stream_steps(gen, audio, config)
    assert len(held) == 60
    # At most a segment (12 s) and its tail request (14 s) as float32, never the whole
    # utterance (60 s: 3.84 MB; converting it for every step held that much).
    assert max(held) < (12 + 14) * SR * 4
    assert max(len(r.audio) for r in gen.requests) <= 14 * SR
