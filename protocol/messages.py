"""Message types of protocol v1.

Client messages are JSON objects keyed by ``"event"`` (as in the original protocol);
server messages are keyed by ``"type"``. Audio travels in binary frames, not here.
Every optional field has a default, so the original ``{"event": "start"}`` and
``{"type": "final", "text": ...}`` are complete messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

PROTOCOL_VERSION = 1


class ErrorCode(str, Enum):
    """Machine-readable error codes; docs/protocol.md says when each is sent."""

    BAD_MESSAGE = "bad_message"  # not JSON, not an object, unknown event, wrong field type
    UNSUPPORTED_VERSION = "unsupported_version"  # hello with a protocol we do not speak
    UNSUPPORTED_AUDIO = "unsupported_audio"  # start with a sample rate other than 16000
    UNSUPPORTED_LANGUAGE = "unsupported_language"  # start with a language the model lacks
    NO_UTTERANCE = "no_utterance"  # audio/stop/cancel while no utterance is open
    ALREADY_STARTED = "already_started"  # start while an utterance is open
    DUPLICATE_ID = "duplicate_id"  # start reusing the id of a session still running
    FRAME_TOO_LARGE = "frame_too_large"  # frame above the negotiated limits
    UTTERANCE_TOO_LONG = "utterance_too_long"  # utterance reached max_utterance_seconds
    TOO_MANY_SESSIONS = "too_many_sessions"  # too many unfinished utterances on a connection
    SERVER_BUSY = "server_busy"  # connection limit reached (fatal)
    NOT_READY = "not_ready"  # model still loading or failed to load
    ENGINE_ERROR = "engine_error"  # the model failed on this utterance
    SHUTTING_DOWN = "shutting_down"  # server is stopping; no new utterances
    INTERNAL = "internal"  # a bug on the server side


class CloseCode(IntEnum):
    """WebSocket close codes of the protocol (4000-4999: private to the application);
    docs/protocol.md says what a client does on each."""

    IDLE_TIMEOUT = 4000  # idle past the advertised idle_timeout_s
    DISPLACED = 4001  # idle longest when the server reached its connection limit

    @classmethod
    def calm(cls, code: int | None) -> bool:
        """A close that asks the client not to reconnect until it has work."""
        return code in (cls.IDLE_TIMEOUT, cls.DISPLACED)


# ---------------------------------------------------------------- client → server


@dataclass(frozen=True)
class Hello:
    """Optional first message: the client's protocol version and name."""

    protocol: int = PROTOCOL_VERSION
    client: str = ""


@dataclass(frozen=True)
class Start:
    """Opens an utterance. ``id`` is chosen by the client or, if empty, by the server."""

    id: str = ""
    language: str | None = None  # e.g. "en", "zh", "Chinese"; None = detect
    context: str = ""  # hotwords / domain text to bias recognition
    sample_rate: int = 16_000


@dataclass(frozen=True)
class Stop:
    """Closes the open utterance (or the one named by ``id``); a final follows."""

    id: str = ""


@dataclass(frozen=True)
class Cancel:
    """Drops the named (or open) utterance; no final follows."""

    id: str = ""


ClientMessage = Hello | Start | Stop | Cancel

# ---------------------------------------------------------------- server → client


@dataclass(frozen=True)
class Ready:
    """Answer to ``hello``: who the server is and what it can do."""

    protocol: int = PROTOCOL_VERSION
    server: str = ""
    engine: str = ""
    model: str = ""
    model_state: str = "ready"  # "loading" | "ready" | "failed"
    capabilities: tuple[str, ...] = ()
    limits: dict[str, float | int] = field(default_factory=dict)


#: Capability in ``ready``: the server answers every accepted ``start`` with ``started``.
START_ACK = "start-ack"


@dataclass(frozen=True)
class Started:
    """A ``start`` was accepted: audio frames for ``id`` are taken from now on. Sent
    (with :data:`START_ACK` advertised) only to clients that said ``hello``."""

    id: str


@dataclass(frozen=True)
class Status:
    """Model state change, sent to clients that said ``hello``."""

    model_state: str  # "loading" | "ready" | "failed"
    message: str = ""


@dataclass(frozen=True)
class Partial:
    """Running hypothesis. ``text`` == ``stable + unstable``; ``stable`` only grows."""

    text: str
    id: str = ""
    stable: str = ""
    unstable: str = ""
    seq: int = 0
    audio_ms: float = 0.0  # length of the audio this hypothesis covers


@dataclass(frozen=True)
class Timings:
    """Server-side timing of one utterance, milliseconds."""

    audio_ms: float = 0.0  # length of the utterance's audio
    queue_ms: float = 0.0  # stop received → final decoding started
    engine_ms: float = 0.0  # final decoding time
    total_ms: float = 0.0  # stop received → final sent


@dataclass(frozen=True)
class Final:
    """Result of one utterance after ``stop``."""

    text: str
    id: str = ""
    language: str | None = None
    timings: Timings | None = None


@dataclass(frozen=True)
class Error:
    """Something the client did or the server hit. ``fatal`` means the socket closes."""

    code: ErrorCode
    message: str
    id: str = ""
    fatal: bool = False


ServerMessage = Ready | Status | Started | Partial | Final | Error
