"""tingxie wire protocol v1 — the only implementation of docs/protocol.md.

Standard library only, so both halves (desktop and server) can depend on it freely.
"""

from protocol.audio import BYTES_PER_SECOND, CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from protocol.codec import (
    ProtocolError,
    decode_client,
    decode_server,
    encode_client,
    encode_server,
)
from protocol.limits import HARD_MAX_FRAME_BYTES, MAX_TEXT_FRAME_BYTES, Limits
from protocol.messages import (
    PROTOCOL_VERSION,
    Cancel,
    ClientMessage,
    Error,
    ErrorCode,
    Final,
    Hello,
    Partial,
    Ready,
    ServerMessage,
    Start,
    Started,
    Status,
    Stop,
    Timings,
)

__all__ = [
    "BYTES_PER_SECOND",
    "CHANNELS",
    "HARD_MAX_FRAME_BYTES",
    "MAX_TEXT_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "SAMPLE_RATE",
    "SAMPLE_WIDTH",
    "Cancel",
    "ClientMessage",
    "Error",
    "ErrorCode",
    "Final",
    "Hello",
    "Limits",
    "Partial",
    "ProtocolError",
    "Ready",
    "ServerMessage",
    "Start",
    "Started",
    "Status",
    "Stop",
    "Timings",
    "decode_client",
    "decode_server",
    "encode_client",
    "encode_server",
]
