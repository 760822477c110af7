"""What all connections share: the engine, the scheduler, limits and counters.

Nothing here belongs to one client; per-client state lives in Connection and Session.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocol.client_events import ModelState as ModelState  # one vocabulary with the client
from protocol.limits import Limits
from protocol.messages import Status
from protocol.version import __version__
from server.audio_buffer import AudioBudget
from server.engine.base import Engine
from server.log_limits import LogThrottle
from server.scheduler import Scheduler

if TYPE_CHECKING:
    from server.connection import Connection

CAPABILITIES = (
    "hello",
    "utterance-id",
    "language",
    "context",
    "cancel",
    "partial-stable",
    "final-timings",
    "error-codes",
    "start-ack",  # started answers an accepted start (clients that said hello)
)

#: Longest a displaced connection stays to send the finals of the utterances it had
#: already stopped, on a server without a request timeout (with one: that timeout,
#: about as long as a decode under way may take). Past it the connection closes and its
#: client sends them again.
DISPLACED_DRAIN_S = 10.0


def displaced_drain_s(request_timeout_s: float | None) -> float:
    """The drain deadline of a displaced connection on a server with this request
    timeout (None: none)."""
    return request_timeout_s if request_timeout_s else DISPLACED_DRAIN_S


@dataclass
class ServerState:
    engine: Engine
    scheduler: Scheduler
    limits: Limits
    partial_interval_s: float
    model_state: ModelState = ModelState.LOADING
    model_error: str = ""
    shutting_down: bool = False
    connections: set[Connection] = field(default_factory=set)
    #: Connections that gave their slot up and are closing (a displaced one still sends
    #: the finals it owes): not in ``connections``, still using the model.
    closing: set[Connection] = field(default_factory=set)
    #: Connections one non-loopback address may hold (0: no cap); server/slots.py.
    max_connections_per_address: int = 0
    #: How long a displaced connection may still send finals (server/connection.py).
    displaced_drain_s: float = DISPLACED_DRAIN_S
    utterances_total: int = 0
    finals_total: int = 0
    errors_total: int = 0
    # Audio all utterances hold together (None: unbounded) and the log's throttle.
    audio_budget: AudioBudget | None = None
    log_throttle: LogThrottle = field(default_factory=LogThrottle)
    started_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    @property
    def server_name(self) -> str:
        return f"tingxie/{__version__}"

    def set_model_state(self, state: ModelState, error: str = "") -> None:
        self.model_state = state
        self.model_error = error
        for connection in list(self.connections):
            connection.notify(Status(model_state=state.value, message=error))

    def readiness(self) -> dict[str, Any]:
        """What ``GET /healthz`` tells anyone: alive, and whether the model is ready."""
        return {
            "status": "ok" if self.model_state is ModelState.READY else self.model_state.value,
            "model_state": self.model_state.value,
            "model_loaded": self.model_state is ModelState.READY,
            "shutting_down": self.shutting_down,
        }

    def health(self) -> dict[str, Any]:
        """The body of ``GET /healthz`` for loopback binds and token holders."""
        return {
            "status": "ok" if self.model_state is ModelState.READY else self.model_state.value,
            "server": self.server_name,
            "model_state": self.model_state.value,
            "model_error": self.model_error,
            "model_loaded": self.model_state is ModelState.READY,
            "engine": self.engine.name,
            "generator": self.engine.generator.name,
            "model": self.engine.generator.model,
            "connections": len(self.connections),
            "closing_connections": len(self.closing),
            "sessions": sum(c.active_sessions for c in self.connections),
            "queue_depth": self.scheduler.queue_depth,
            "in_flight": self.scheduler.in_flight,
            # Every coroutine the server runs; back to its idle number when no client is
            # connected, unless something leaks.
            "tasks": len(asyncio.all_tasks()),
            "utterances_total": self.utterances_total,
            "finals_total": self.finals_total,
            "errors_total": self.errors_total,
            "shutting_down": self.shutting_down,
            "buffered_audio_bytes": self.audio_budget.used_bytes if self.audio_budget else 0,
            "uptime_s": round(asyncio.get_running_loop().time() - self.started_at, 1),
        }
