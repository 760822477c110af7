"""Audio memory: int16, one buffer, bounded per utterance and server-wide (pure and
loopback)."""

from __future__ import annotations

import json
import platform
import sys

import numpy as np
import pytest
import websockets

from protocol.audio import SAMPLE_RATE
from server.audio_buffer import AudioBudget, AudioBudgetExceeded, AudioBuffer
from server.memory import can_trim, should_trim, trim_heap
from tests.server.helpers import send_pcm, until_type, wait_until


def pcm_of(samples: np.ndarray) -> bytes:
    return samples.astype("<i2").tobytes()


def test_audio_is_kept_as_int16_and_converted_exactly_on_read() -> None:
    rng = np.random.default_rng(1)
    samples = rng.integers(-32768, 32767, size=50_000, dtype=np.int16)
    buffer = AudioBuffer(initial_seconds=0.01)
    data = pcm_of(samples)
    for offset in range(0, len(data), 333):  # odd-sized frames split samples
        buffer.append(data[offset : offset + 333])
    out = buffer.samples()
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, samples.astype(np.float32) / 32768.0)
    assert buffer.capacity_bytes <= 2 * 2 * len(samples)  # int16, at most doubled
    out[:] = 0  # the caller owns its copy: the buffer is unchanged
    assert buffer.samples()[0] == samples[0] / 32768.0


def test_capacity_stops_at_the_utterance_limit() -> None:
    limit = 3 * SAMPLE_RATE
    buffer = AudioBuffer(initial_seconds=1.0, max_samples=limit)
    second = b"\x01\x00" * SAMPLE_RATE
    for _ in range(3):
        buffer.append(second)
    assert buffer.n_samples == limit
    assert buffer.capacity_bytes == 2 * limit  # doubling would have made it 4 s


def test_the_budget_refuses_frames_past_it_and_gets_everything_back() -> None:
    budget = AudioBudget(10_000)
    first, second = AudioBuffer(budget=budget), AudioBuffer(budget=budget)
    first.append(b"\x00" * 6_000)
    second.append(b"\x00" * 4_000)
    assert budget.used_bytes == 10_000
    with pytest.raises(AudioBudgetExceeded):
        second.append(b"\x00\x00")
    assert second.n_samples == 2_000  # the refused frame was not kept
    first.release()
    first.release()  # twice is harmless
    assert budget.used_bytes == 4_000
    second.append(b"\x00\x00")
    second.release()
    assert budget.used_bytes == 0 and second.n_samples == 0


async def test_past_the_server_budget_an_utterance_ends_early_with_a_clear_error(start) -> None:
    server = await start(max_buffered_audio_bytes=SAMPLE_RATE * 2)  # one second of audio
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start", "id": "long"}))
        await send_pcm(ws, b"\x10\x00" * (2 * SAMPLE_RATE))
        error = await until_type(ws, "error")
        assert error["code"] == "server_busy" and error["id"] == "long"
        assert error["fatal"] is False and "audio" in error["message"]
        final = await until_type(ws, "final")  # what fitted is still decoded
        assert final["id"] == "long"
        assert final["timings"]["audio_ms"] == pytest.approx(1000.0)
        await wait_until(lambda: server.state.audio_budget.used_bytes == 0)
        # The budget is free again: the next utterance is whole.
        await ws.send(json.dumps({"event": "start", "id": "next"}))
        await send_pcm(ws, b"\x10\x00" * (SAMPLE_RATE // 2))
        await ws.send(json.dumps({"event": "stop"}))
        final = await until_type(ws, "final")
        assert final["id"] == "next" and final["timings"]["audio_ms"] == pytest.approx(500.0)


async def test_a_client_that_vanishes_mid_utterance_frees_its_audio(start) -> None:
    server = await start()
    budget = server.state.audio_budget
    async with websockets.connect(server.url) as ws:
        await ws.send(json.dumps({"event": "start"}))
        await send_pcm(ws, b"\x10\x00" * SAMPLE_RATE)
        await wait_until(lambda: budget.used_bytes == 2 * SAMPLE_RATE)
    await wait_until(lambda: budget.used_bytes == 0 and not server.state.connections)


def test_the_heap_is_trimmed_after_a_burst_not_during_steady_use() -> None:
    budget = AudioBudget(1 << 30)
    mib = 1024 * 1024
    assert budget.try_reserve(40 * mib)
    # Nothing freed yet: no trim, however long since the last.
    assert not should_trim(budget, 16 * mib, since_last_s=60.0, min_interval_s=10.0)
    budget.release(30 * mib)  # 30 MiB freed, 10 still held
    assert not should_trim(budget, 16 * mib, since_last_s=5.0, min_interval_s=10.0)
    assert should_trim(budget, 16 * mib, since_last_s=10.0, min_interval_s=10.0)
    budget.release(10 * mib)  # the burst is over: trim at once
    assert should_trim(budget, 16 * mib, since_last_s=0.5, min_interval_s=10.0)
    budget.high_water_bytes = budget.used_bytes  # what the trimmer does when it trims
    assert not should_trim(budget, 16 * mib, since_last_s=60.0, min_interval_s=10.0)


def test_trim_heap_runs_where_the_c_library_has_it() -> None:
    assert trim_heap() in (True, False)
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert can_trim()
