"""A loopback TCP proxy that can break the network between a client and the server.

Runs its own asyncio loop on its own thread, so synchronous tests can drive it:

- :meth:`LoopbackProxy.cut` resets every connection through it at once (both sides see
  the connection die, as when a router or VPN drops it);
- :meth:`LoopbackProxy.blackhole` makes the connections open now go silent in both
  directions without closing them (a Wi-Fi roam or a lost NAT entry: nothing arrives,
  nothing says so), while new connections pass normally;
- :meth:`LoopbackProxy.resume` lets the silent connections flow again; what was sent
  meanwhile is delivered then (TCP keeps it), nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)  # identity: pipes live in a set
class _Pipe:
    """One client connection and its connection to the server."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()  # RST, no FIN: the peer learns it at once


class LoopbackProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self._pipes: set[_Pipe] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._server: asyncio.Server | None = None

    # ---------------------------------------------------------------- any thread

    def start(self) -> LoopbackProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._pipes)

    def cut(self) -> int:
        """Reset every connection now; returns how many there were."""
        return int(self._call(self._cut()))

    def blackhole(self) -> None:
        """Silence the connections open now (new ones pass)."""
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        """Let silenced connections flow again."""
        self._call(self._set_flowing(True))

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(10)

    # ---------------------------------------------------------------- proxy thread

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()

    async def _cut(self) -> int:
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.abort()
            for task in pipe.tasks:
                task.cancel()
        self._pipes.clear()
        return len(pipes)

    async def _set_flowing(self, flowing: bool) -> None:
        for pipe in self._pipes:
            if flowing:
                pipe.flowing.set()
            else:
                pipe.flowing.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()  # like the server: connection refused
            return
        pipe = _Pipe(writer, server_writer)
        pipe.flowing.set()
        self._pipes.add(pipe)
        pipe.tasks = [
            asyncio.create_task(self._pump(reader, server_writer, pipe)),
            asyncio.create_task(self._pump(server_reader, writer, pipe)),
        ]
        await asyncio.gather(*pipe.tasks, return_exceptions=True)
        self._pipes.discard(pipe)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, pipe: _Pipe
    ) -> None:
        try:
            while True:
                await pipe.flowing.wait()
                data = await source.read(65536)
                await pipe.flowing.wait()  # silenced meanwhile: hold what was read
                if not data:
                    break
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        # One side closed (or failed): close the other too, as a plain TCP path would.
        with contextlib.suppress(Exception):
            sink.close()
