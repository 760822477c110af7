"""Fixtures for the real-X11 hotkey tests."""

from __future__ import annotations

import pytest

from tests.output.x11 import require_virtual_x11


@pytest.fixture(scope="session")
def x11(request: pytest.FixtureRequest) -> str:
    return require_virtual_x11(request)
