"""Fixtures for the real-X11 hotkey tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.output.x11 import require_virtual_x11


@pytest.fixture(scope="session")
def x11(xvfb: Any) -> str:
    return require_virtual_x11(xvfb)
