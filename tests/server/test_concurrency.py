"""Many clients at once: each gets its own right final, batching happens."""

from __future__ import annotations

import asyncio
import itertools

from desktop.client import ServerLink
from protocol.messages import Final, Partial
from tests.conftest import Recording
from tests.server.helpers import CHUNK, fake_final


async def dictate(url: str, recording: Recording, utterance_id: str) -> tuple[Final, list[Partial]]:
    loop = asyncio.get_running_loop()
    async with await ServerLink.open(url) as link:
        await link.start(utterance_id)
        pcm = recording.pcm()
        began = loop.time()
        for offset in range(0, len(pcm), CHUNK):  # real time, 100 ms frames
            await asyncio.sleep(max(0.0, began + offset / 32000 - loop.time()))
            await link.send_audio(pcm[offset : offset + CHUNK])
        await link.stop(utterance_id)
        partials = []
        async for message in link.messages():
            if isinstance(message, Partial):
                partials.append(message)
            elif isinstance(message, Final):
                return message, partials
    raise AssertionError("connection closed before the final")


async def test_16_concurrent_clients_get_their_own_right_finals(
    start, recordings: list[Recording]
) -> None:
    # A per-batch cost makes requests pile up, so batches of several sessions form.
    server = await start(fake_per_batch_ms=30.0, fake_per_request_ms=2.0)
    chosen = [recordings[i % len(recordings)] for i in range(16)]
    results = await asyncio.gather(
        *(dictate(server.url, rec, f"client-{i}") for i, rec in enumerate(chosen))
    )
    for i, (rec, (final, partials)) in enumerate(zip(chosen, results, strict=True)):
        assert final.id == f"client-{i}"
        assert final.text == fake_final(rec), rec.id
        assert final.timings is not None
        assert final.timings.audio_ms == round(len(rec.pcm()) / 32, 1)
        assert partials, f"{rec.id}: no partials during {rec.seconds} s of real-time audio"
        assert all(p.id == f"client-{i}" for p in partials)
        covered = [p.audio_ms for p in partials]
        assert covered == sorted(covered) and covered[0] > 0
        assert covered[-1] <= final.timings.audio_ms
        seqs = [p.seq for p in partials]
        assert seqs == sorted(set(seqs)), "partial seq must increase"
        stables = [p.stable for p in partials]
        for earlier, later in itertools.pairwise(stables):
            assert later.startswith(earlier), "stable text must only grow"
    stats = server.state.scheduler.stats
    assert stats.largest_batch > 1, "requests of different sessions were never batched"
    assert stats.batches < stats.requests
