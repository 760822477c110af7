"""End-to-end fixtures: the virtual microphone of tests/desktop and a loaded whisper model.

The microphone fixture is re-exported from tests/desktop/conftest.py (one definition of
the PulseAudio pipe source for both directories).
"""

from __future__ import annotations

import pytest

from tests.desktop.conftest import virtual_mic  # noqa: F401 - re-exported fixture
from tests.e2e.whisper_engine import WhisperGenerator, require_whisper


@pytest.fixture(scope="session")
def whisper_generator() -> WhisperGenerator:
    """tiny.en loaded once per session; skips when faster-whisper/the model are missing."""
    require_whisper()
    generator = WhisperGenerator()
    generator._load()
    return generator
