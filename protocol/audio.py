"""Audio format on the wire: PCM signed 16-bit little-endian, mono, 16 kHz."""

from __future__ import annotations

SAMPLE_RATE = 16_000
CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes per sample (s16le)
BYTES_PER_SECOND = SAMPLE_RATE * CHANNELS * SAMPLE_WIDTH


def bytes_to_seconds(n_bytes: int) -> float:
    """Duration of ``n_bytes`` of wire audio, in seconds."""
    return n_bytes / BYTES_PER_SECOND


def seconds_to_bytes(seconds: float) -> int:
    """Number of wire bytes for ``seconds`` of audio, rounded down to whole samples."""
    return int(seconds * SAMPLE_RATE) * SAMPLE_WIDTH
