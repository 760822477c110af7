"""Faults with real processes and sockets: what the user sees, and that nothing is lost.

- the network between the tray app's client and the server is cut, or goes silent and
  comes back, or goes silent and is then cut (tests/hardening/proxy.py);
- the recognizer raises, or hangs, on one user's utterance;
- a client process is killed mid-utterance.

The server killed mid-utterance and restarted is tests/client/test_streaming_client.py
(``test_final_is_complete_after_server_killed_mid_utterance``). docs/hardening.md
describes each fault.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.streaming import (
    Backoff,
    ClientEvent,
    ClientState,
    DictationClient,
    FinalText,
    Keepalive,
    PartialText,
    StateChanged,
    UtteranceFailed,
)
from server.engine.fake import FAULT_HANG, FAULT_RAISE
from tests.client.test_streaming_client import utterance_events
from tests.conftest import CLI, Recording, spawn_fake_server
from tests.hardening.proxy import LoopbackProxy
from tests.hardening.soak import read_health, read_process
from tests.server.helpers import fake_final

TIMEOUT_S = 1.0  # the server's --request-timeout in these tests


class Recorder:
    """A client's event callback that keeps every event, for waiting and for review."""

    def __init__(self) -> None:
        self._inbox: queue.Queue[ClientEvent] = queue.Queue()
        self.seen: list[tuple[float, ClientEvent]] = []

    def __call__(self, event: ClientEvent) -> None:
        self._inbox.put(event)

    def wait(
        self, kind: type, where: Callable[[Any], bool] = lambda e: True, timeout: float = 20.0
    ) -> Any:
        for _, event in self.seen:  # already here?
            if isinstance(event, kind) and where(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            self.seen.append((time.monotonic(), event))
            if isinstance(event, kind) and where(event):
                return event

    def settle(self) -> list[ClientEvent]:
        """Everything received so far."""
        while True:
            try:
                self.seen.append((time.monotonic(), self._inbox.get_nowait()))
            except queue.Empty:
                return [event for _, event in self.seen]

    def states(self) -> list[ClientState]:
        return [e.state for e in self.settle() if isinstance(e, StateChanged)]

    def count(self, kind: type) -> int:
        return sum(isinstance(e, kind) for e in self.settle())


def is_in_order(sequence: list[ClientState], wanted: list[ClientState]) -> bool:
    """Whether ``wanted`` occurs in ``sequence`` in this order (gaps allowed)."""
    rest = iter(sequence)
    return all(any(state is want for state in rest) for want in wanted)


def ready(event: Any) -> bool:
    return bool(event.state is ClientState.READY)


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A micro-batching fake server (one model call at a time, as the transformers
    backend) that fails or hangs on request, with a short request timeout."""
    log = tmp_path_factory.mktemp("faults") / "server.log"
    proc, port = spawn_fake_server(
        "--fake-faults",
        "--fake-per-batch-ms", "20",
        "--request-timeout", str(TIMEOUT_S),
        log=log,
    )  # fmt: skip
    yield port
    proc.kill()
    proc.wait(10)


@pytest.fixture
def proxy(faulty_server: int) -> Iterator[LoopbackProxy]:
    proxy = LoopbackProxy(faulty_server).start()
    yield proxy
    proxy.close()


@pytest.fixture
def clients() -> Iterator[Callable[..., tuple[DictationClient, Recorder]]]:
    """Start DictationClients that are closed after the test."""
    started: list[DictationClient] = []

    def start(url: str, **options: Any) -> tuple[DictationClient, Recorder]:
        recorder = Recorder()
        client = DictationClient(
            url, recorder, backoff=Backoff(first_s=0.1, maximum_s=0.5), **options
        )
        client.start()
        started.append(client)
        recorder.wait(StateChanged, ready)
        return client, recorder

    yield start
    for client in started:
        client.close()


def speak(client: DictationClient, events: list[object]) -> None:
    for event in events:
        client.submit(event)  # type: ignore[arg-type]


@pytest.fixture
def sentence(recordings: list[Recording]) -> Recording:
    return next(r for r in recordings if r.id == "ps_0890")  # 5.3 s


# ---------------------------------------------------------------- the network


def test_connection_cut_mid_utterance(proxy, clients, sentence) -> None:
    client, seen = clients(proxy.url)
    script = utterance_events(sentence)
    half = len(script) // 2
    speak(client, script[:half])
    seen.wait(PartialText)  # the server is decoding the first half
    assert proxy.cut() == 1
    seen.wait(StateChanged, lambda e: e.state is ClientState.UNREACHABLE)
    speak(client, script[half:])  # the user goes on talking meanwhile
    final = seen.wait(FinalText)
    assert final.text == fake_final(sentence)  # every sample, in order, exactly once
    assert client.pending_utterances == 0
    states = seen.states()
    assert is_in_order(
        states,
        [ClientState.READY, ClientState.UNREACHABLE, ClientState.CONNECTING, ClientState.READY],
    ), states
    assert proxy.accepted == 2  # one reconnect, through the repaired path
    # The server dropped the dead connection and its half utterance.
    deadline = time.monotonic() + 5
    while read_health(proxy.target[1])["connections"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_health(proxy.target[1])["connections"] == 1


def test_connection_silent_then_back(proxy, clients, sentence) -> None:
    client, seen = clients(proxy.url)
    script = utterance_events(sentence)
    half = len(script) // 2
    speak(client, script[:half])
    seen.wait(PartialText)
    proxy.blackhole()
    speak(client, script[half:])  # the end of the sentence is sent into the silence
    time.sleep(1.0)
    assert seen.count(FinalText) == 0
    assert seen.states()[-1] is ClientState.READY  # nothing looks wrong yet
    proxy.resume()
    final = seen.wait(FinalText, timeout=10)
    assert final.text == fake_final(sentence)
    assert ClientState.UNREACHABLE not in seen.states()  # no reconnect was needed
    assert proxy.accepted == 1
    assert client.pending_utterances == 0


def test_connection_silent_then_cut(proxy, clients, sentence) -> None:
    client, seen = clients(proxy.url)
    script = utterance_events(sentence)
    half = len(script) // 2
    speak(client, script[:half])
    seen.wait(PartialText)
    proxy.blackhole()
    speak(client, script[half:])
    time.sleep(1.0)
    assert seen.count(FinalText) == 0 and seen.states()[-1] is ClientState.READY
    assert proxy.cut() == 1
    final = seen.wait(FinalText)
    assert final.text == fake_final(sentence)
    states = seen.states()
    assert is_in_order(states, [ClientState.READY, ClientState.UNREACHABLE, ClientState.READY])
    assert proxy.accepted == 2
    assert client.pending_utterances == 0


def test_connection_silent_for_good_is_given_up_by_the_keepalive(proxy, clients, sentence):
    """The old path never comes back and never says so; new connections work (a laptop
    that changed networks). The client's keepalive notices and replays."""
    keepalive = Keepalive(interval_s=0.5, timeout_s=1.0)
    client, seen = clients(proxy.url, keepalive=keepalive)
    script = utterance_events(sentence)
    half = len(script) // 2
    speak(client, script[:half])
    seen.wait(PartialText)
    silenced_at = time.monotonic()
    proxy.blackhole()
    speak(client, script[half:])
    lost = seen.wait(StateChanged, lambda e: e.state is ClientState.UNREACHABLE, timeout=10)
    noticed_after = next(t for t, e in seen.seen if e is lost) - silenced_at
    # The next ping, its pong timeout, the unanswered close (2.5 s here), and 1 s of slack
    # for a loaded machine (the default keepalive would take 17 s, past the wait above).
    assert keepalive.gives_up_within_s == 2.5
    assert noticed_after < keepalive.gives_up_within_s + 1.0
    final = seen.wait(FinalText)
    assert final.text == fake_final(sentence)
    assert proxy.accepted == 2 and client.pending_utterances == 0


# ---------------------------------------------------------------- the recognizer


def test_engine_failing_on_one_utterance_fails_only_that_one(
    faulty_server, clients, recordings
) -> None:
    url = f"ws://127.0.0.1:{faulty_server}"
    victim, victim_seen = clients(url, context=FAULT_RAISE)
    other, other_seen = clients(url)
    by_id = {r.id: r for r in recordings}
    speak(victim, utterance_events(by_id["ps_cards_002"]))
    speak(other, utterance_events(by_id["ps_cards_003"]))
    failed = victim_seen.wait(UtteranceFailed)
    assert failed.utterance_id == 1
    assert "recognition failed" in failed.message and "InjectedFault" in failed.message
    final = other_seen.wait(FinalText)
    assert final.text == fake_final(by_id["ps_cards_003"])
    # The victim's connection stays up and owes nothing.
    assert victim_seen.count(FinalText) == 0 and victim.pending_utterances == 0
    assert victim_seen.states()[-1] is ClientState.READY


def hang_one_of_two(
    url: str, clients: Callable[..., tuple[DictationClient, Recorder]], recordings: list[Recording]
) -> tuple[FinalText, float, UtteranceFailed, float]:
    """A hung utterance and a healthy one, ended together: (the healthy final, its
    stop-to-final seconds, the hung one's failure, its stop-to-failure seconds)."""
    victim, victim_seen = clients(url, context=FAULT_HANG)
    other, other_seen = clients(url)
    by_id = {r.id: r for r in recordings}
    hung, healthy = by_id["ps_cards_004"], by_id["ps_cards_003"]
    began = time.monotonic()
    speak(victim, utterance_events(hung))
    speak(other, utterance_events(healthy))
    final = other_seen.wait(FinalText)
    assert final.text == fake_final(healthy)
    failed = victim_seen.wait(UtteranceFailed, timeout=30)
    failed_after = next(t for t, e in victim_seen.seen if e is failed) - began
    assert final.timeline.stop_to_final() is not None
    return final, final.timeline.stop_to_final(), failed, failed_after


def test_engine_hanging_on_one_utterance_micro_batching(faulty_server, clients, recordings):
    """One model call at a time: a hung call holds the model until the timeout, then
    the others run; their finals are late by about the timeout, and complete."""
    url = f"ws://127.0.0.1:{faulty_server}"
    _, latency, failed, failed_after = hang_one_of_two(url, clients, recordings)
    assert latency < 3 * TIMEOUT_S + 2.0
    assert f"no result from the model within {TIMEOUT_S:g} s" in failed.message
    assert failed_after >= TIMEOUT_S


@pytest.fixture(scope="module")
def continuous_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A fake that runs many single-request calls at once, as vLLM does."""
    log = tmp_path_factory.mktemp("faults") / "continuous.log"
    proc, port = spawn_fake_server(
        "--fake-faults",
        "--fake-per-batch-ms", "20",
        "--max-batch-size", "1",
        "--fake-concurrent-batches", "4",
        "--request-timeout", "2",
        log=log,
    )  # fmt: skip
    yield port
    proc.kill()
    proc.wait(10)


def test_engine_hanging_on_one_utterance_continuous_batching(
    continuous_server, clients, recordings
):
    """Calls run side by side: the others' finals come on time; the hung one fails
    after the timeout."""
    url = f"ws://127.0.0.1:{continuous_server}"
    _, latency, failed, failed_after = hang_one_of_two(url, clients, recordings)
    assert latency < 1.0  # half the 2 s timeout: nobody waited for the hung call
    assert "no result from the model within 2 s" in failed.message
    assert failed_after >= 2.0


# ---------------------------------------------------------------- the client


def test_client_killed_mid_utterance_frees_everything(
    subprocess_env: dict[str, str], recordings: list[Recording], tmp_path: Path
) -> None:
    proc, port = spawn_fake_server(env=subprocess_env, log=tmp_path / "server.log")
    try:
        health = read_health(port)
        fds_before = read_process(proc.pid)[1]
        assert health["connections"] == 0
        wav = next(r for r in recordings if r.id == "ps_0870").path  # 7 s, sent in real time
        cli = subprocess.Popen(
            [*CLI, "--url", f"ws://127.0.0.1:{port}", str(wav)],
            env=subprocess_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while read_health(port)["sessions"] != 1:  # the utterance is open, audio flowing
                assert time.monotonic() < deadline and cli.poll() is None
                time.sleep(0.05)
            time.sleep(1.0)
            cli.send_signal(signal.SIGKILL)
            cli.wait(10)
        finally:
            if cli.poll() is None:
                cli.kill()
        deadline = time.monotonic() + 5
        while True:
            health = read_health(port)
            fds = read_process(proc.pid)[1]
            freed = (health["connections"], health["sessions"], health["queue_depth"]) == (0, 0, 0)
            if (freed and fds == fds_before) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert (health["connections"], health["sessions"], health["queue_depth"]) == (0, 0, 0)
        assert health["in_flight"] == 0
        assert fds == fds_before
        assert health["utterances_total"] == 1 and health["finals_total"] == 0
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)
