"""tingxie-cli file mode against a real server process killed mid-file (system lane:
subprocesses): it reconnects with backoff and replays what is unfinished, so every file
gets its exact final; a server that stays gone ends the run by the utterance's deadline
with exit 3 and no traceback."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from tests.client.test_streaming_client import Server
from tests.conftest import CLI, Recording
from tests.hardening.soak import read_health
from tests.server.helpers import fake_final


def by_id(recordings: list[Recording], name: str) -> Recording:
    return next(r for r in recordings if r.id == name)


def cli(
    server: Server, env: dict[str, str], timeout: str, *wavs: Recording
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "--url", server.url, "--json", "--realtime", "--final-timeout", timeout,
         *(str(w.path) for w in wavs)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def kill_mid_utterance(server: Server, proc: subprocess.Popen[str]) -> None:
    """Kill the server once the CLI's utterance is open there (audio flowing)."""
    deadline = time.monotonic() + 20
    while read_health(server.port)["sessions"] != 1:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)  # polling the server's state, bounded by the deadline
    server.kill()


def finish(proc: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]], str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, [json.loads(line) for line in out.splitlines()], err


def test_server_killed_mid_file_and_restarted_every_file_gets_its_exact_final(
    server: Server, recordings: list[Recording], subprocess_env: dict[str, str]
) -> None:
    first, second = by_id(recordings, "ps_0880"), by_id(recordings, "ps_cards_001")
    proc = cli(server, subprocess_env, "30", first, second)
    kill_mid_utterance(server, proc)
    server.start()  # same port; the CLI is retrying meanwhile
    returncode, events, err = finish(proc)
    assert returncode == 0, err
    assert "Traceback" not in err and "reconnecting" in err
    finals = [e["text"] for e in events if e["type"] == "final"]
    # every byte of each file, in order, exactly once: the fake engine's text says so
    assert finals == [fake_final(first), fake_final(second)]
    assert [e for e in events if e["type"] == "error"] == []


def test_server_killed_for_good_ends_the_run_by_the_deadline_with_exit_3(
    server: Server, recordings: list[Recording], subprocess_env: dict[str, str]
) -> None:
    word = by_id(recordings, "ps_cards_002")  # 2 s
    began = time.monotonic()
    proc = cli(server, subprocess_env, "1", word)
    kill_mid_utterance(server, proc)
    returncode, events, err = finish(proc)
    assert returncode == 3, err
    assert "Traceback" not in err and "tingxie-cli: error:" in err
    (failed,) = [e for e in events if e["type"] == "error"]
    assert failed["code"] == "unreachable"
    assert [e for e in events if e["type"] == "final"] == []
    # 2 s of audio at real time + the 1 s deadline (+ start-up): not a wait for a server
    assert time.monotonic() - began < 15
