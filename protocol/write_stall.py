"""A link whose peer stopped reading is dropped, on both ends.

When the peer takes nothing (a frozen process, a client that never reads) while its
machine keeps the TCP connection open, the socket buffers fill and asyncio pauses
writing. From then on every write waits for room for ever, and websockets' own keepalive
ping and closing handshake wait behind the same full buffer: neither end would ever give
the link up. asyncio's flow control says when writing stalls (``pause_writing``, past
the transport's high-water mark) and when it moves again (``resume_writing``);
:class:`WriteStallGuard` aborts the transport once writing has stalled for
``write_timeout_s``, which ends every wait on that link at once (``connection_lost``).
"""

from __future__ import annotations

import asyncio


class WriteStallGuard(asyncio.Protocol):
    """Put before a websockets connection class (``class C(WriteStallGuard,
    ServerConnection)``) and pass that class as ``create_connection``."""

    #: Seconds writing may stay paused before the transport is aborted.
    write_timeout_s: float = 30.0
    _stall_timer: asyncio.TimerHandle | None = None
    _stalled_transport: asyncio.Transport | None = None  # TCP and TLS ones can abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if isinstance(transport, asyncio.Transport):
            self._stalled_transport = transport

    def pause_writing(self) -> None:
        super().pause_writing()
        loop = asyncio.get_running_loop()
        self._stall_timer = loop.call_later(self.write_timeout_s, self._give_up_writing)

    def resume_writing(self) -> None:
        self._cancel_stall_timer()
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_stall_timer()
        super().connection_lost(exc)

    def write_stalled(self) -> None:
        """Called just before the transport is aborted (to log it)."""

    def _cancel_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _give_up_writing(self) -> None:
        self._stall_timer = None
        self.write_stalled()
        if self._stalled_transport is not None:
            self._stalled_transport.abort()  # drops what is buffered; connection_lost follows
