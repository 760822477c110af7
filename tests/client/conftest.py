"""Fixtures of the client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.test_streaming_client import Server


@pytest.fixture
def server(subprocess_env: dict[str, str]) -> Iterator[Server]:
    """A tingxie-server child process (fake engine) that a test may kill and restart."""
    srv = Server(subprocess_env)
    srv.start()
    yield srv
    if srv.proc is not None and srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait(10)
