"""Fixtures of the setup tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from desktop.launcher import ServerLauncher
from tests.conftest import free_port
from tests.setup.recorded import RecordedRunner


@pytest.fixture
def wsl_machine() -> Iterator[tuple[RecordedRunner, ServerLauncher, int]]:
    """The recorded WSL GPU machine, with a launcher that starts servers through it."""
    port = free_port()
    runner = RecordedRunner("gpu_ubuntu", port=port)
    launcher = ServerLauncher(runner, lambda state, detail: None, poll_s=0.1)
    try:
        yield runner, launcher, port
    finally:
        launcher.stop()
        runner.stop_served()
