"""Hardening tests: Hypothesis profile, and a tally of the inputs each fuzzer tried.

``TINGXIE_FUZZ_SCALE`` multiplies the default number of inputs (property examples and
live-fuzz frames) for a long run, e.g. ``TINGXIE_FUZZ_SCALE=50 python -m pytest
tests/hardening -k fuzz``. The tally is printed at the end of the run.
"""

from __future__ import annotations

import collections
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

#: How many times the default amount of fuzzing to do.
FUZZ_SCALE = max(1, int(os.environ.get("TINGXIE_FUZZ_SCALE", "1")))

settings.register_profile(
    "tingxie-hardening",
    max_examples=200 * FUZZ_SCALE,
    deadline=None,  # a shared CI machine pauses at random; timing is not the property
    database=None,  # no example files written into the tree
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("tingxie-hardening")
# Hypothesis caches what it learns in .hypothesis/ under the working directory: not here.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "tingxie-hypothesis")

#: Inputs tried per fuzzer, reported after the run.
INPUTS_TRIED: collections.Counter[str] = collections.Counter()


def tried(fuzzer: str, n: int = 1) -> None:
    INPUTS_TRIED[fuzzer] += n


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not INPUTS_TRIED:
        return
    terminalreporter.section("hardening: inputs tried")
    for fuzzer, n in sorted(INPUTS_TRIED.items()):
        terminalreporter.write_line(f"{n:>9}  {fuzzer}")
    terminalreporter.write_line(f"{sum(INPUTS_TRIED.values()):>9}  in total")
