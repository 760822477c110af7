"""Fixtures for the real-X11 output tests (see x11.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.output.x11 import TargetWindow, require_virtual_x11, window_manager


@pytest.fixture(scope="session")
def x11(request: pytest.FixtureRequest) -> Iterator[str]:
    display = require_virtual_x11(request)
    with window_manager():
        yield display


@pytest.fixture(scope="module")
def target_process(x11: str) -> Iterator[TargetWindow]:
    window = TargetWindow()
    try:
        yield window
    finally:
        window.close()


@pytest.fixture
def target(target_process: TargetWindow) -> TargetWindow:
    """The target window, emptied and focused."""
    target_process.reset()
    return target_process
