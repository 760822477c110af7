"""Fixtures for the real-X11 output tests (see x11.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from tests.output.x11 import TargetWindow, require_virtual_x11, window_manager

# Hypothesis (test_text_sink.py) writes .hypothesis/ under the working directory: not here.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "tingxie-hypothesis")


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
