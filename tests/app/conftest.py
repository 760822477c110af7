"""Qt tests run offscreen unless a test starts its own X server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
