"""Fixtures shared by all tests: speech recordings and an in-process server."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.app import RunningServer, start_server
from server.config import ServerConfig, parse_config
from server.engine.base import Engine

SPEECH_DIR = Path(__file__).parent / "data" / "speech"


@dataclass(frozen=True)
class Recording:
    id: str
    path: Path
    text: str
    seconds: float

    def pcm(self) -> bytes:
        with wave.open(str(self.path), "rb") as wav:
            return wav.readframes(wav.getnframes())

    def samples(self) -> np.ndarray:
        return np.frombuffer(self.pcm(), dtype="<i2").astype(np.float32) / 32768.0


def load_recordings() -> list[Recording]:
    with open(SPEECH_DIR / "manifest.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        Recording(r["id"], SPEECH_DIR / r["file"], r["text"], float(r["seconds"])) for r in rows
    ]


@pytest.fixture(scope="session")
def recordings() -> list[Recording]:
    return load_recordings()


def server_config(**overrides: Any) -> ServerConfig:
    """A loopback fake-engine config on a free port, with overrides."""
    config = parse_config(["--engine", "fake", "--port", "0"], env={})
    return replace(config, **overrides)


StartServer = Callable[..., Coroutine[Any, Any, RunningServer]]


@pytest.fixture
async def start() -> AsyncIterator[StartServer]:
    """Start in-process servers; all are shut down after the test."""
    running: list[RunningServer] = []

    async def _start(engine: Engine | None = None, **overrides: Any) -> RunningServer:
        server = await start_server(server_config(**overrides), engine)
        running.append(server)
        if engine is None:
            await server.wait_loaded()
        return server

    yield _start
    for server in running:
        await server.shutdown()


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for running the entry points as child processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


SERVER = [sys.executable, "-m", "server"]
CLI = [sys.executable, "-m", "desktop.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"server on port {port} not healthy after {timeout} s")


def spawn_fake_server(
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    quiet: bool = True,
    log: Path | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """``tingxie-server --engine fake`` as a child process, healthy on return. Its output
    goes to ``log`` if given, else nowhere (``quiet``) or to ours."""
    port = port or free_port()
    output: Any = subprocess.DEVNULL if quiet else None
    if log is not None:
        output = log.open("ab")
    proc = subprocess.Popen(
        [*SERVER, "--engine", "fake", "--port", str(port), "--log-level", "WARNING", *args],
        env=env,
        cwd=Path(__file__).parents[1],
        stdout=output,
        stderr=subprocess.STDOUT if log is not None else output,
    )
    if log is not None:
        output.close()  # the child holds its own copy
    try:
        wait_healthy(port)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc, port


@pytest.fixture
def server_process(subprocess_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = {
        **subprocess_env,
        "TINGXIE_PORT": str(port),
        "TINGXIE_ENGINE": "fake",
        "TINGXIE_FAKE_PER_BATCH_MS": "400",
    }
    proc = subprocess.Popen(
        SERVER, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_healthy(port)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
