"""The tray client's connection loop cannot die: every kind of failure while opening a
link, and a bug in what handles the server's messages, is logged and retried with
backoff (in-process loopback server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidMessage

import desktop.streaming
from desktop.client import AuthFailed, ServerBusy, ServerLink, TlsError, VersionMismatch
from desktop.streaming import (
    Backoff,
    ClientState,
    DictationClient,
    FinalText,
    StateChanged,
)
from protocol.codec import ProtocolError
from protocol.messages import ErrorCode
from tests.client.test_hostile_servers import speak
from tests.conftest import Recording, StartServer
from tests.hardening.test_faults import Recorder
from tests.server.helpers import fake_final

FAILURES: list[BaseException] = [
    ConnectionClosedError(None, None),
    TimeoutError(),
    asyncio.TimeoutError(),
    OSError("network is unreachable"),
    InvalidMessage("did not receive a valid HTTP response"),
    ProtocolError(ErrorCode.BAD_MESSAGE, "garbage"),
    ServerBusy("full"),
    AuthFailed("token"),
    TlsError("certificate"),
    VersionMismatch("protocol 2"),
    RuntimeError("a bug"),
    KeyError("another bug"),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda e: type(e).__name__)
async def test_any_failure_while_connecting_is_retried(
    failure: BaseException,
    start: StartServer,
    recordings: list[Recording],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = await start()
    real_open = ServerLink.open
    attempts: list[str] = []

    async def flaky_open(url: str, **kwargs: Any) -> ServerLink:
        attempts.append(url)
        if len(attempts) <= 2:
            raise failure
        return await real_open(url, **kwargs)

    monkeypatch.setattr(desktop.streaming.ServerLink, "open", flaky_open)
    recorder = Recorder()
    fast = Backoff(first_s=0.02, maximum_s=0.05, auth_failed_s=0.05)
    client = DictationClient(server.url, recorder, backoff=fast)
    client.start()
    try:
        await asyncio.to_thread(
            recorder.wait, StateChanged, lambda e: e.state is ClientState.READY, 20.0
        )
        assert len(attempts) == 3
        failed_states = [s for s in recorder.states() if s is not ClientState.CONNECTING]
        assert failed_states[0] is not ClientState.READY  # the failure was shown first
        word = min(recordings, key=lambda r: r.seconds)
        speak(client, word, 1)
        final = await asyncio.to_thread(recorder.wait, FinalText, lambda e: True, 20.0)
        assert final.text == fake_final(word)
    finally:
        await asyncio.to_thread(client.close)


async def test_a_bug_while_handling_a_message_costs_the_link_not_the_loop(
    start: StartServer, recordings: list[Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await start()
    recorder = Recorder()
    client = DictationClient(server.url, recorder, backoff=Backoff(first_s=0.02, maximum_s=0.05))
    real_receive = client._machine.receive  # the machine is the client's own part
    calls: list[object] = []

    def buggy_receive(message: Any, now: float) -> None:
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("bug in a handler")
        real_receive(message, now)

    monkeypatch.setattr(client._machine, "receive", buggy_receive)
    client.start()
    try:
        word = min(recordings, key=lambda r: r.seconds)
        await asyncio.to_thread(
            recorder.wait, StateChanged, lambda e: e.state is ClientState.READY, 20.0
        )
        speak(client, word, 1)
        final = await asyncio.to_thread(recorder.wait, FinalText, lambda e: True, 20.0)
        assert final.text == fake_final(word)  # replayed on a new link after the bug
    finally:
        await asyncio.to_thread(client.close)
