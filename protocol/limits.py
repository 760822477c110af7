"""Size limits of protocol v1. Servers may be configured tighter, never looser than
``HARD_MAX_FRAME_BYTES`` (a frame above it is refused by the WebSocket layer itself)."""

from __future__ import annotations

from dataclasses import dataclass

#: Largest control (text) frame a server has to accept from a client.
MAX_TEXT_FRAME_BYTES = 16 * 1024
#: Largest text message a client accepts from a server (a 60 s final is ~20 KiB; this
#: leaves room for any utterance up to the longest limit). Servers never send more.
MAX_SERVER_MESSAGE_BYTES = 1024 * 1024
#: Default largest audio (binary) frame: 1 s of audio. Clients send 20-100 ms frames.
MAX_AUDIO_FRAME_BYTES = 32_000
#: Frames above this are dropped by the transport with close code 1009.
HARD_MAX_FRAME_BYTES = 1024 * 1024
#: Longest text field (context / hotwords) accepted on ``start``.
MAX_CONTEXT_CHARS = 2_000
#: Longest utterance id.
MAX_ID_CHARS = 64
#: Longest language code.
MAX_LANGUAGE_CHARS = 32
#: Deepest nesting of arrays and objects in a control frame (messages need 2).
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class Limits:
    """Limits a server enforces; sent to clients in ``ready``."""

    max_audio_frame_bytes: int = MAX_AUDIO_FRAME_BYTES
    max_utterance_seconds: float = 120.0
    max_sessions_per_connection: int = 4
    max_connections: int = 256
    #: A connection with no utterance open or decoding is closed after this many
    #: seconds without a message (0: never).
    idle_timeout_s: float = 300.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "max_audio_frame_bytes": self.max_audio_frame_bytes,
            "max_utterance_seconds": self.max_utterance_seconds,
            "max_sessions_per_connection": self.max_sessions_per_connection,
            "max_connections": self.max_connections,
            "idle_timeout_s": self.idle_timeout_s,
        }
