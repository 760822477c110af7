"""Desktop audio: sources, VAD, the pure segmenter, latency timeline and the audio thread.

Import the submodules directly (``desktop.audio.segmenter`` ...); this package imports
nothing heavy (no sounddevice, no torch) on its own.
"""
