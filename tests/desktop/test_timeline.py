"""Latency timeline arithmetic."""

from __future__ import annotations

import pytest

from desktop.audio.timeline import UtteranceTimeline


def test_durations_and_unknowns() -> None:
    t = UtteranceTimeline(7, speech_started=10.0, speech_end_detected=12.0)
    assert t.end_to_final() is None and t.perceived_latency() is None
    t.stop_sent = 12.001
    t.first_partial = 10.4
    t.final_received = 12.151
    t.set_audio_positions(
        start_sample=0, end_sample=32_000, speech_end_sample=24_000, detected_at_sample=33_000
    )
    assert t.audio_s == 2.0
    assert t.vad_decision_s == pytest.approx(0.5625)
    assert t.end_to_stop() == pytest.approx(0.001)
    assert t.stop_to_final() == pytest.approx(0.150)
    assert t.end_to_final() == pytest.approx(0.151)
    assert t.start_to_first_partial() == pytest.approx(0.4)
    assert t.perceived_latency() == pytest.approx(0.5625 + 0.151)
    assert t.final_to_typed() is None
    t.typed = 12.2
    assert t.end_to_typed() == pytest.approx(0.2)
    assert t.perceived_latency() == pytest.approx(0.5625 + 0.2)
    d = t.as_dict()
    assert d["utterance_id"] == 7 and d["stop_to_final"] == pytest.approx(0.150)
