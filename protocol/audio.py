"""Audio format on the wire: PCM signed 16-bit little-endian, mono, 16 kHz."""

from __future__ import annotations

SAMPLE_RATE = 16_000
CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes per sample (s16le)
BYTES_PER_SECOND = SAMPLE_RATE * CHANNELS * SAMPLE_WIDTH
