"""Fixtures for driving the whole tray app on a virtual X display with a virtual mic."""

from __future__ import annotations

from tests.desktop.conftest import virtual_mic  # noqa: F401 - re-exported fixture
from tests.output.conftest import target, target_process, x11  # noqa: F401 - re-exported
