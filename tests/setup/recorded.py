"""A process runner that replays recorded outputs (tests/data/wsl/<machine>/).

It goes through the same decoding as the real runner (``ConsoleDecoder``), so the
UTF-16LE bytes of wsl.exe reach the setup exactly as they would on Windows. Commands
marked ``serve`` start a real fake-engine server on the port in their argv, so the
launcher's /healthz watch and the token hand-over run for real.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from desktop.launcher import Captured, ConsoleDecoder, ProcessHandle, SubprocessRunner

DATA = Path(__file__).parents[1] / "data" / "wsl"


class FinishedProcess:
    """A recorded run: its output was handed on at start; it has already exited."""

    pid = 0

    def __init__(self, returncode: int) -> None:
        self.returncode = returncode

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def close_input(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode


class HangingProcess:
    """A program that prints nothing and never ends by itself (until terminated)."""

    pid = 0

    def __init__(self) -> None:
        self.ended = threading.Event()
        self.input_closed = threading.Event()

    def close_input(self) -> None:
        self.input_closed.set()

    def poll(self) -> int | None:
        return -15 if self.ended.is_set() else None

    def terminate(self) -> None:
        self.ended.set()

    def kill(self) -> None:
        self.ended.set()

    def wait(self, timeout: float | None = None) -> int:
        if not self.ended.wait(timeout):
            raise subprocess.TimeoutExpired("recorded", timeout or 0)
        return -15


class RecordedRunner:
    def __init__(self, machine: str, port: int = 8765) -> None:
        self.folder = DATA / machine
        manifest = json.loads((self.folder / "commands.json").read_text(encoding="utf-8"))
        self._responses: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for entry in manifest["commands"]:
            argv = tuple(word.replace("{port}", str(port)) for word in entry["argv"])
            self._responses[argv] = list(entry["responses"])
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._real = SubprocessRunner()
        self.served: list[ProcessHandle] = []
        self.hanging: list[HangingProcess] = []

    def script(self, argv: Sequence[str], *responses: dict[str, Any]) -> None:
        """Replace the responses for ``argv`` (e.g. a failure first, then the recording)."""
        self._responses[tuple(argv)] = list(responses)

    def recording(self, name: str, returncode: int) -> dict[str, Any]:
        return {"output": name, "returncode": returncode}

    def _next(self, argv: Sequence[str]) -> dict[str, Any]:
        with self._lock:
            self.calls.append(list(argv))
            responses = self._responses.get(tuple(argv))
            if responses is None:
                known = "\n".join(" ".join(a) for a in self._responses)
                raise AssertionError(f"no recording for {list(argv)}; recorded:\n{known}")
            return responses.pop(0) if len(responses) > 1 else responses[0]

    def _bytes(self, response: dict[str, Any], key: str = "output") -> bytes:
        return (self.folder / response[key]).read_bytes() if key in response else b""

    def capture(self, argv: Sequence[str], timeout: float) -> Captured:
        response = self._next(argv)
        if response.get("stop_served"):  # the stop script inside WSL: the served server stops
            for handle in self.served:
                if handle.poll() is None:
                    handle.terminate()
            return Captured(0, b"")
        if "launch_error" in response:
            return Captured(-1, b"", response["launch_error"])
        errors = self._bytes(response, "stderr")
        return Captured(int(response["returncode"]), self._bytes(response), errors=errors)

    def run(self, argv: Sequence[str], timeout: float) -> int:
        return self.capture(argv, timeout).returncode

    def start(
        self,
        argv: Sequence[str],
        on_line: Callable[[str], None],
        env: Mapping[str, str] | None = None,
        keep_input: bool = False,
    ) -> ProcessHandle:
        response = self._next(argv)
        self.envs.append(dict(env or {}))
        if "launch_error" in response:
            raise FileNotFoundError(response["launch_error"])
        if response.get("serve"):
            return self._serve(argv, on_line, env)
        if response.get("hang"):
            self.hanging.append(HangingProcess())
            return self.hanging[-1]
        for key in ("output", "stderr"):  # each stream decoded on its own, as for real
            decoder = ConsoleDecoder()
            for line in [*decoder.feed(self._bytes(response, key)), *decoder.close()]:
                on_line(line)
        return FinishedProcess(int(response["returncode"]))

    def _serve(
        self, argv: Sequence[str], on_line: Callable[[str], None], env: Mapping[str, str] | None
    ) -> ProcessHandle:
        """In place of the server inside WSL: a real fake-engine server on its port."""
        words = shlex.split(argv[-1])  # the bash -lc script: "… <server> … --port N …"
        port = words[words.index("--port") + 1]
        server = [sys.executable, "-m", "server", "--engine", "fake", "--port", port]
        handle = self._real.start(server, on_line, env)
        self.served.append(handle)
        return handle

    def stop_served(self) -> None:
        for handle in self.served:
            if handle.poll() is None:
                handle.terminate()
                handle.wait(10)
