"""Synthesises tingxie's start and stop cues (resources/sounds/*.wav).

    python resources/source/make_sounds.py            # rewrite resources/sounds/
    python resources/source/make_sounds.py --out DIR  # somewhere else (tests)

Each cue is a soft 110 ms glide between two notes a fifth apart: up for start, down
for stop. A sine with a quiet octave, a 12 ms fade-in and a long fade-out (no click),
peaking at -18 dBFS so it sits under whatever else is playing. Deterministic: the same
script always writes the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import wave
from pathlib import Path

import numpy as np

RATE = 48_000  # what most output devices run at: no resampling on the way out
DURATION_S = 0.110
LOW_HZ, HIGH_HZ = 660.0, 990.0
PEAK_DBFS = -18.0
FADE_IN_S = 0.012
CUES = {"start": (LOW_HZ, HIGH_HZ), "stop": (HIGH_HZ, LOW_HZ)}


def glide(start_hz: float, end_hz: float) -> np.ndarray:
    n = round(DURATION_S * RATE)
    t = np.arange(n) / RATE
    # an exponential sweep sounds like an even step in pitch; phase is its integral
    k = np.log(end_hz / start_hz) / DURATION_S
    phase = 2 * np.pi * start_hz * (np.exp(k * t) - 1) / k
    tone = np.sin(phase) + 0.2 * np.sin(2 * phase)
    fade_in = np.clip(t / FADE_IN_S, 0, 1)
    fade_out = np.cos(np.clip((t - FADE_IN_S) / (DURATION_S - FADE_IN_S), 0, 1) * np.pi / 2)
    envelope = np.sin(fade_in * np.pi / 2) ** 2 * fade_out**2
    shaped = tone * envelope
    shaped *= 10 ** (PEAK_DBFS / 20) / np.abs(shaped).max()
    return np.round(shaped * 32767).astype("<i2")


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())


def write_sounds(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (start_hz, end_hz) in CUES.items():
        path = out / f"{name}.wav"
        write_wav(path, glide(start_hz, end_hz))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sounds")
    args = parser.parse_args(argv)
    written = write_sounds(args.out)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
