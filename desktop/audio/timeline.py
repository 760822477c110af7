"""Per-utterance latency timeline: defined in :mod:`protocol.client_timeline`, where the
client machine that fills it in lives; re-exported here for the desktop's imports."""

from __future__ import annotations

from protocol.client_timeline import UtteranceTimeline

__all__ = ["UtteranceTimeline"]
