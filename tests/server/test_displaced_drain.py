"""A dictating connection displaced at the connection limit (loopback): its slot goes to
the newcomer at once, it takes no new work, the utterances it had already stopped get
their finals (decoded once, not again on the client's next connection), then it closes
with 4001 — within a deadline, however long the model takes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from desktop.streaming import Backoff, ClientEvent, DictationClient, FinalText, UtteranceFailed
from protocol.messages import CloseCode
from server.app import RunningServer
from server.connection import Connection
from server.engine.base import GenerationRequest, GenerationResult, Priority
from server.engine.fake import FakeGenerator, text_for_audio
from server.engine.full_decode import FullDecodeEngine
from server.state import DISPLACED_DRAIN_S, displaced_drain_s
from tests.client.test_streaming_client import utterance_events
from tests.conftest import Recording, StartServer
from tests.server.helpers import next_json, send_pcm, until_type, wait_until

#: Linux routes all of 127.0.0.0/8 to loopback: a second client address on one machine.
OTHER_LOOPBACK = "127.0.0.2"
STOPPED_PCM = b"\x10\x00" * 16000  # 1 s: the utterance decoding when displaced
OPEN_PCM = b"\x20\x00" * 8000  # 0.5 s: the utterance still open


class GatedGenerator(FakeGenerator):
    """A fake whose finals wait for :attr:`release`; it records what each final it was
    asked for says, when it is asked (a decode counts even if nobody gets its result)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.finals_asked: list[str] = []

    async def generate(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        finals = [r for r in batch if r.priority is Priority.FINAL]
        self.finals_asked += [text_for_audio(r.audio, self.block_seconds) for r in finals]
        if finals:
            await self.release.wait()
        return await super().generate(batch)


def pcm_text(pcm: bytes) -> str:
    """The fake engine's text for these wire bytes."""
    return text_for_audio(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0)


async def gated_server(start: StartServer, generator: GatedGenerator) -> RunningServer:
    server = await start(FullDecodeEngine(generator), partial_interval_ms=0.0)
    await server.wait_loaded()
    server.state.limits = replace(server.state.limits, max_connections=2)
    return server


async def say(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def synced(ws: ClientConnection) -> None:
    """Every message sent before has been handled: a hello's ready comes after them."""
    await say(ws, {"event": "hello", "protocol": 1})
    await until_type(ws, "ready")


async def until_closed(ws: ClientConnection, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every control message received until the server closes the connection."""
    received: list[dict[str, Any]] = []
    try:
        while True:
            received.append(await next_json(ws, timeout))
    except ConnectionClosed:
        return received


async def dictating_with_one_decoding(
    server: RunningServer, generator: GatedGenerator, victim: ClientConnection
) -> Connection:
    """``victim``: utterance "done" stopped and decoding (held), "open" being spoken."""
    await synced(victim)
    await say(victim, {"event": "start", "id": "done"})
    await send_pcm(victim, STOPPED_PCM)
    await say(victim, {"event": "stop", "id": "done"})
    await say(victim, {"event": "start", "id": "open"})
    await send_pcm(victim, OPEN_PCM)
    await synced(victim)
    await wait_until(lambda: generator.finals_asked == [pcm_text(STOPPED_PCM)])
    (connection,) = [c for c in server.state.connections if not c.idle]  # the hog is silent
    return connection


async def busy_hog(server: RunningServer, hog: ClientConnection) -> None:
    """A second connection of 127.0.0.1, dictating, that spoke after the victim."""
    await say(hog, {"event": "start", "id": "hog"})
    await synced(hog)
    await wait_until(lambda: all(not c.idle for c in server.state.connections))


def test_the_drain_deadline_is_the_request_timeout_or_a_default() -> None:
    assert displaced_drain_s(45.0) == 45.0
    assert displaced_drain_s(None) == DISPLACED_DRAIN_S > 0


async def test_the_server_takes_its_drain_deadline_from_the_request_timeout(
    start: StartServer,
) -> None:
    server = await start(request_timeout_s=7.5)
    assert server.state.displaced_drain_s == 7.5


async def test_a_displaced_connection_sends_the_final_it_was_decoding_then_closes(
    start: StartServer,
) -> None:
    generator = GatedGenerator()
    server = await gated_server(start, generator)
    async with (
        websockets.connect(server.url) as victim,
        websockets.connect(server.url) as hog,
    ):
        displaced = await dictating_with_one_decoding(server, generator, victim)
        await busy_hog(server, hog)
        async with websockets.connect(server.url, local_addr=(OTHER_LOOPBACK, 0)) as newcomer:
            await synced(newcomer)
            # The slot is the newcomer's at once, while the victim still decodes.
            assert displaced not in server.state.connections
            assert len(server.state.connections) == 2
            health = server.state.health()  # the victim still uses the model: it shows
            assert (health["connections"], health["closing_connections"]) == (2, 1)
            # What the victim sends now is new work: none of it is decoded or answered.
            await send_pcm(victim, OPEN_PCM)
            await say(victim, {"event": "stop", "id": "open"})
            await say(victim, {"event": "start", "id": "later"})
            await send_pcm(victim, STOPPED_PCM)
            await say(victim, {"event": "stop", "id": "later"})
            generator.release.set()
            received = await until_closed(victim)
            assert [(m["type"], m["id"]) for m in received] == [("final", "done")]
            assert received[0]["text"] == pcm_text(STOPPED_PCM)
            assert victim.close_code == CloseCode.DISPLACED
            assert "connection limit" in (victim.close_reason or "")
            # Decoded once; the open utterance and what came after were not decoded.
            assert generator.finals_asked == [pcm_text(STOPPED_PCM)]
            await say(hog, {"event": "stop", "id": "hog"})
            assert (await until_type(hog, "final"))["id"] == "hog"
            assert newcomer.close_code is None and hog.close_code is None
            assert server.state.health()["closing_connections"] == 0
    await wait_until(lambda: not server.state.connections)
    assert server.state.audio_budget is not None
    await wait_until(lambda: server.state.audio_budget.used_bytes == 0)  # type: ignore[union-attr]


async def test_a_displaced_connection_whose_decode_hangs_closes_at_the_deadline(
    start: StartServer,
) -> None:
    generator = GatedGenerator()  # never released while the victim waits
    server = await gated_server(start, generator)
    server.state.displaced_drain_s = 0.5
    async with (
        websockets.connect(server.url) as victim,
        websockets.connect(server.url) as hog,
    ):
        await dictating_with_one_decoding(server, generator, victim)
        await busy_hog(server, hog)
        displaced_at = time.monotonic()
        async with websockets.connect(server.url, local_addr=(OTHER_LOOPBACK, 0)) as newcomer:
            received = await until_closed(victim, timeout=5.0)
            held_s = time.monotonic() - displaced_at
            assert victim.close_code == CloseCode.DISPLACED
            assert received == []  # no final: its client sends the utterance again
            assert 0.5 <= held_s < 5.0  # waited for the decode, but not for ever
            await synced(newcomer)
        generator.release.set()  # the model answers late: nobody is sent anything
        await say(hog, {"event": "stop", "id": "hog"})
        assert (await until_type(hog, "final"))["id"] == "hog"
    await wait_until(lambda: not server.state.connections and not server.state.scheduler.in_flight)


async def test_the_tray_client_gets_each_final_once_and_replays_only_the_open_one(
    start: StartServer, recordings: list[Recording]
) -> None:
    generator = GatedGenerator()
    server = await gated_server(start, generator)
    stopped, spoken = recordings[0], recordings[1]
    events: list[ClientEvent] = []
    client = DictationClient(server.url, events.append, backoff=Backoff(0.1, 0.5))
    client.start()
    try:
        for event in utterance_events(stopped, 1):
            client.submit(event)  # type: ignore[arg-type]
        second = utterance_events(spoken, 2)
        half = len(second) // 2
        for event in second[:half]:  # the user is still speaking it when displaced
            client.submit(event)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        await wait_until(lambda: len(generator.finals_asked) == 1, timeout=20.0)
        (tray,) = server.state.connections
        # Its frames are all in (silent for a while: the burst is over), then 127.0.0.1
        # fills the last slot, so the tray is the connection of 127.0.0.1 silent longest.
        await wait_until(lambda: loop.time() - tray.idle_since > 0.5)
        async with websockets.connect(server.url) as hog:
            await busy_hog(server, hog)
            async with websockets.connect(server.url, local_addr=(OTHER_LOOPBACK, 0)) as other:
                await synced(other)
                assert tray not in server.state.connections
                for event in second[half:]:  # the user goes on talking, then stops
                    client.submit(event)  # type: ignore[arg-type]
                generator.release.set()
                # The tray reconnects and displaces the idle newcomer; the replay ends.
                await wait_until(
                    lambda: sum(isinstance(e, FinalText) for e in list(events)) == 2, 20.0
                )
        finals = [e for e in events if isinstance(e, FinalText)]
        assert [(f.utterance_id, f.text) for f in finals] == [
            (1, text_for_audio(stopped.samples())),
            (2, text_for_audio(spoken.samples())),
        ]
        assert not any(isinstance(e, UtteranceFailed) for e in events)
        # The stopped utterance was decoded once; the replay sent only the open one.
        assert generator.finals_asked == [f.text for f in finals]
        assert client.pending_utterances == 0
    finally:
        await asyncio.to_thread(client.close)  # its link closes against our loop
