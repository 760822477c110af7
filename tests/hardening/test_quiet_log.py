"""The server process's log at its default level stays short under a crowd of
connections and bad frames (system lane: a child process)."""

from __future__ import annotations

import json
from pathlib import Path

import websockets

from tests.conftest import spawn_fake_server

CROWD = 100


async def test_a_crowd_of_connections_and_bad_frames_is_a_few_log_lines(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    log_path = tmp_path / "server.log"
    proc, port = spawn_fake_server("--log-level", "INFO", env=subprocess_env, log=log_path)
    try:
        before = len(log_path.read_text().splitlines())
        url = f"ws://127.0.0.1:{port}"
        crowd = [await websockets.connect(url) for _ in range(CROWD)]
        for ws in crowd:
            await ws.send('{"event": "hello", "protocol": 1}')
            await ws.send("not json")
        for ws in crowd:  # every message was answered
            assert json.loads(await ws.recv())["type"] == "ready"
            assert json.loads(await ws.recv())["code"] == "bad_message"
            for _ in range(10):  # empty utterances: no model call, no log line each
                await ws.send('{"event": "start"}')
                await ws.send('{"event": "stop"}')
                assert json.loads(await ws.recv())["type"] == "started"  # said hello
                assert json.loads(await ws.recv())["type"] == "final"
        for ws in crowd:
            await ws.close()
    finally:
        proc.terminate()
        proc.wait(20)
    lines = log_path.read_text().splitlines()[before:]
    crowd_lines = [line for line in lines if "stopped" not in line and "shutting" not in line]
    # Connects, disconnects and errors: one line per kind per 10 s, not one per socket.
    assert len(crowd_lines) <= 10, "\n".join(lines)
    assert any("bad_message" in line for line in crowd_lines)
