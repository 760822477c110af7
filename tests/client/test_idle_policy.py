"""Tray clients and the server's idle policy (in-process loopback lane).

Three tray clients share a server with room for two connections that closes idle ones
after 1 s. Closed for idleness (4000) or displaced (4001), a client waits unconnected
until it has something to say: no reconnect storm. Its next utterance connects, and its
exact final arrives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from desktop.streaming import (
    Backoff,
    ClientEvent,
    ClientState,
    DictationClient,
    FinalText,
    StateChanged,
)
from server.config import parse_config
from tests.client.test_streaming_client import utterance_events
from tests.conftest import Recording, StartServer
from tests.server.helpers import fake_final

IDLE_TIMEOUT_S = 1.0


class Watched:
    """A tray client and every event it reported (from its own thread)."""

    def __init__(self, url: str) -> None:
        self.events: list[ClientEvent] = []
        self.client = DictationClient(
            url, self.events.append, backoff=Backoff(first_s=0.1, maximum_s=1.0)
        )

    def links(self) -> int:
        """Links opened: each one reports READY with the server's name."""
        return sum(
            1
            for e in list(self.events)
            if isinstance(e, StateChanged) and e.state is ClientState.READY
        )

    def connects(self) -> int:
        return sum(
            1
            for e in list(self.events)
            if isinstance(e, StateChanged) and e.state is ClientState.CONNECTING
        )


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_idle_clients_at_a_full_server_rest_then_dictate_exactly(
    start: StartServer, recordings: list[Recording]
) -> None:
    flags = ["--idle-timeout", str(IDLE_TIMEOUT_S), "--max-connections", "2"]
    limits = parse_config(["--engine", "fake", *flags], env={}).limits
    server = await start(limits=limits)
    clients = [Watched(server.url) for _ in range(3)]
    for watched in clients:
        watched.client.start()
    try:
        # Each connects once; one is displaced (4001) by the third, the others close
        # for idleness (4000): all end calm, none reconnects.
        await until(lambda: all(w.client.state is ClientState.IDLE_DISCONNECTED for w in clients))
        assert all(w.links() >= 1 for w in clients)
        links_before = sum(w.links() for w in clients)
        connects_before = sum(w.connects() for w in clients)
        await asyncio.sleep(3 * IDLE_TIMEOUT_S)  # a window in which a storm would show
        assert sum(w.connects() for w in clients) == connects_before
        assert sum(w.links() for w in clients) == links_before <= 4
        assert len(server.state.connections) == 0
        assert all(w.client.state is ClientState.IDLE_DISCONNECTED for w in clients)

        # Each one's next utterance connects (its audio waits meanwhile) and is exact.
        said = [r for r in recordings if r.id.startswith("ps_cards_")][:3]
        for watched, recording in zip(clients, said, strict=True):
            for event in utterance_events(recording):
                watched.client.submit(event)  # type: ignore[arg-type]
        for watched, recording in zip(clients, said, strict=True):
            await until(lambda w=watched: any(isinstance(e, FinalText) for e in list(w.events)))
            (final,) = [e for e in watched.events if isinstance(e, FinalText)]
            assert final.text == fake_final(recording) and not final.stale
        # Then calm again, each with one more link than before at most a few.
        await until(lambda: all(w.client.state is ClientState.IDLE_DISCONNECTED for w in clients))
        assert sum(w.links() for w in clients) <= links_before + 3 + 3  # 3 needed, busy retries
    finally:
        for watched in clients:
            await asyncio.to_thread(watched.client.close)
