"""A short soak: 8 clients dictating real speech in real time against a server process.

The long run (30 minutes, with drift figures) is tests/bench/bench_soak.py. Here the
clients reconnect every 2 utterances and cancel every 3rd, so connection teardown and
cancelling are exercised often in a few seconds; afterwards the server must hold no
connection, session or request, and as many file descriptors as before.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Recording, spawn_fake_server
from tests.hardening.soak import run_soak

CLIENTS = 8
SECONDS = 10.0
FD_TOLERANCE = 1


async def test_short_soak_leaks_nothing(
    subprocess_env: dict[str, str], recordings: list[Recording], tmp_path: Path
) -> None:
    proc, port = spawn_fake_server(
        "--fake-per-batch-ms", "40",
        "--fake-per-request-ms", "4",
        env=subprocess_env,
        log=tmp_path / "server.log",
    )  # fmt: skip
    try:
        report = await run_soak(
            f"ws://127.0.0.1:{port}",
            proc.pid,
            port,
            recordings,
            clients=CLIENTS,
            duration_s=SECONDS,
            sample_every_s=2.0,
            utterances_per_connection=2,
            cancel_every=3,
        )
    finally:
        alive = proc.poll() is None
        proc.kill()
        proc.wait(10)
    assert alive
    assert report.wrong == [] and report.errors == []
    assert len(report.finals) >= CLIENTS * 2, "too few finals to mean anything"
    assert all(f.exact for f in report.finals)
    assert sum(t.cancelled for t in report.tallies) >= CLIENTS // 2
    assert sum(t.connections for t in report.tallies) >= 2 * CLIENTS
    loaded = [s for s in report.samples if s.connections > 0]
    assert max(s.sessions for s in loaded) >= CLIENTS // 2  # the load was real
    settled, baseline = report.settled, report.baseline
    assert (settled.connections, settled.sessions, settled.queue_depth) == (0, 0, 0)
    assert settled.in_flight == 0
    assert settled.fds <= baseline.fds + FD_TOLERANCE, (baseline.fds, settled.fds)
    assert settled.tasks == baseline.tasks, (baseline.tasks, settled.tasks)
