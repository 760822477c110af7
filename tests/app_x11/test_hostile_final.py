"""The whole tray app against a hostile server (issue 12): dictated text is text, end to end.

The tray app runs as a user runs it (a process on the X display, the virtual microphone
hearing real speech, push-to-talk held with ``xdotool``). The server on loopback is a
small scripted one: it answers every utterance with hostile partials and the hostile
final of the issue -- a command between newlines, the end of bracketed paste, OSC 52,
NUL, U+202E, backspaces. The focused window is bash in a real xterm. Only the visible
text arrives, on one line: the test presses Enter itself, bash runs the single command
``x`` with the visible words, and the file the hidden ``touch`` names is never made.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from desktop.output.text_sink import sanitize
from protocol.codec import decode_client, encode_server
from protocol.limits import Limits
from protocol.messages import Final, Hello, Partial, Ready, Start, Stop
from tests.app_x11 import test_push_to_talk as ptt
from tests.app_x11.test_push_to_talk import LiveMicrophone, start_app, wait_log
from tests.conftest import Recording
from tests.output import test_x11_typing as x11_typing
from tests.output.test_x11_typing import hostile_final, wait_for
from tests.output.x11 import xdotool

# fixtures of the neighbouring tests: the live microphone, bash in a real xterm
live_mic = ptt.live_mic
xterm_shell = x11_typing.xterm_shell

#: A partial the overlay gets while the user speaks (what it shows is tested offscreen).
HOSTILE_STABLE = "x\n\x1b[2J\x1b]52;c;cHduZWQ=\x07"
HOSTILE_UNSTABLE = "\u202eevil\x08\x08\r\n"


class ScriptedServer:
    """A tingxie server on 127.0.0.1 that answers hello with ready and every utterance
    with hostile partials, then ``final`` after its stop. Runs its own event loop in a
    thread; ``finals`` counts the finals sent."""

    def __init__(self, final: str) -> None:
        self.final = final
        self.finals = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="scripted-server")
        self._done: asyncio.Event | None = None

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        assert self._listening.wait(10), "the scripted server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._done = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0) as server:
            self.port = int(server.sockets[0].getsockname()[1])
            self._listening.set()
            await self._done.wait()

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            async for frame in ws:
                if isinstance(frame, bytes):
                    continue  # the audio: this server hears nothing
                message = decode_client(frame)
                if isinstance(message, Hello):
                    ready = Ready(server="scripted", limits=Limits().to_json())
                    await ws.send(encode_server(ready))
                elif isinstance(message, Start):
                    await ws.send(
                        encode_server(
                            Partial(
                                text=HOSTILE_STABLE + HOSTILE_UNSTABLE,
                                id=message.id,
                                stable=HOSTILE_STABLE,
                                unstable=HOSTILE_UNSTABLE,
                                seq=1,
                            )
                        )
                    )
                elif isinstance(message, Stop):
                    await ws.send(encode_server(Final(text=self.final, id=message.id)))
                    self.finals += 1
        except ConnectionClosed:
            pass


@pytest.fixture
def hostile_server(xterm_shell: Path) -> Iterator[ScriptedServer]:
    with ScriptedServer(hostile_final(xterm_shell / "PWNED")) as server:
        yield server


def activate_xterm() -> None:
    """Give the focus back to the test's xterm (started by the xterm_shell fixture,
    before the app)."""
    out = subprocess.run(
        ["xdotool", "search", "--name", f"tingxie-xterm-{os.getpid()}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    window = out.stdout.split()[0]
    xdotool("windowactivate", "--sync", window)
    wait_for(lambda: active_window() == int(window), 10, "the xterm never became active")


def active_window() -> int:
    out = subprocess.run(["xdotool", "getactivewindow"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def test_the_app_types_only_the_visible_text_of_a_hostile_final_into_bash(
    xterm_shell: Path,
    hostile_server: ScriptedServer,
    live_mic: LiveMicrophone,
    recordings: list[Recording],
    tmp_path: Path,
) -> None:
    pwned = xterm_shell / "PWNED"
    # the app strips the final's outer whitespace before the sink
    visible = sanitize(hostile_server.final).text.strip()
    words = visible.split()
    assert words[0] == "x" and words.count("touch") == 2 and "\n" not in visible
    settings_dir = tmp_path / "settings"
    app = start_app(settings_dir, hostile_server.port, "en")
    log = settings_dir / "logs" / "tingxie.log"
    try:
        wait_log(log, r"global hotkeys bound")
        wait_log(log, r"client state: ready")
        activate_xterm()
        recording = next(r for r in recordings if r.id == "ps_goforward")
        speech = np.frombuffer(recording.pcm(), "<i2")
        started = live_mic.say(speech)
        assert started.wait(5)
        time.sleep(0.2)  # the key goes down a little after the first syllable
        xdotool("keydown", "F9")
        time.sleep(len(speech) / 16000)  # hold it while the speech plays (real time)
        xdotool("keyup", "F9")
        typed = wait_log(log, r"typed (\d+) chars by (\w+) into")
        assert hostile_server.finals == 1
        # xterm has no paste key in the built-in table: typed as keystrokes, every one
        assert typed.group(2) == "keystrokes" and int(typed.group(1)) == len(visible)
        xdotool("key", "Return")  # the user's own Enter
        ran = xterm_shell / "ran"
        wait_for(ran.exists, 10, "bash never ran the line")
        wait_for(lambda: ran.read_text().endswith("\n"), 5, "x never finished writing")
        assert ran.read_text() == " ".join(words[1:]) + "\n"
        assert not pwned.exists()
    finally:
        app.terminate()
        app.wait(10)
    assert not pwned.exists()
