"""Per-utterance latency timeline: plain data for the overlay, logs and benchmarks.

It rides on the client machine's final-text event, so it lives in protocol/ (the
desktop imports it from ``desktop.audio.timeline`` as before).

All clock values are ``time.monotonic()`` seconds taken by whoever observed the moment
(audio thread, client thread, typing code); this module never reads a clock itself.
Audio-time facts (how much silence the VAD waited for) come from the segmenter's sample
positions and are kept separately, since they are not wall-clock measurements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from protocol.audio import SAMPLE_RATE

__all__ = ["UtteranceTimeline"]


def _span(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


@dataclass
class UtteranceTimeline:
    utterance_id: int
    #: UtteranceStarted delivered by the audio thread.
    speech_started: float | None = None
    #: UtteranceEnded delivered by the audio thread (the VAD or the key decided the end).
    speech_end_detected: float | None = None
    #: ``stop`` written to the socket.
    stop_sent: float | None = None
    #: first partial text received.
    first_partial: float | None = None
    #: final text received.
    final_received: float | None = None
    #: final text typed into the focused window.
    typed: float | None = None
    #: audio time from the end of the last speech chunk to the end decision, seconds.
    vad_decision_s: float | None = None
    #: length of the audio sent for the utterance, seconds.
    audio_s: float | None = None

    def set_audio_positions(
        self,
        start_sample: int,
        end_sample: int,
        speech_end_sample: int,
        detected_at_sample: int,
    ) -> None:
        """Fill the audio-time fields from an ``UtteranceEnded``'s sample positions."""
        self.audio_s = (end_sample - start_sample) / SAMPLE_RATE
        self.vad_decision_s = (detected_at_sample - speech_end_sample) / SAMPLE_RATE

    # Durations (seconds); None while either end is unknown.

    def end_to_stop(self) -> float | None:
        """End detected → stop sent: the client's own overhead."""
        return _span(self.speech_end_detected, self.stop_sent)

    def stop_to_final(self) -> float | None:
        """Stop sent → final received: transport, server queueing and engine."""
        return _span(self.stop_sent, self.final_received)

    def end_to_final(self) -> float | None:
        """End detected → final received: what the user waits for after speaking."""
        return _span(self.speech_end_detected, self.final_received)

    def final_to_typed(self) -> float | None:
        return _span(self.final_received, self.typed)

    def end_to_typed(self) -> float | None:
        return _span(self.speech_end_detected, self.typed)

    def start_to_first_partial(self) -> float | None:
        return _span(self.speech_started, self.first_partial)

    def perceived_latency(self) -> float | None:
        """End of speech (audio time before detection included) → text typed, or → final
        when nothing has been typed yet."""
        after = self.end_to_typed() if self.typed is not None else self.end_to_final()
        if after is None or self.vad_decision_s is None:
            return None
        return self.vad_decision_s + after

    def as_dict(self) -> dict[str, float | int | None]:
        """Timestamps and derived durations, for logs and benchmark records."""
        d: dict[str, float | int | None] = dict(asdict(self))
        d.update(
            end_to_stop=self.end_to_stop(),
            stop_to_final=self.stop_to_final(),
            end_to_final=self.end_to_final(),
            final_to_typed=self.final_to_typed(),
            end_to_typed=self.end_to_typed(),
            perceived_latency=self.perceived_latency(),
        )
        return d
