"""Writing benchmark results into docs/benchmarks.md, one section per benchmark."""

from __future__ import annotations

import datetime
import math
import os
import platform
import re
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Each section is written by the benchmark named in it (tests/bench/), with the exact
command. Numbers are medians (p50) and 95th percentiles (p95, nearest rank) over all
events of the run; comparisons are made side by side in one run. Re-run a benchmark to
refresh its section; the others are kept.
"""


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def write_section(title: str, command: str, body: str) -> None:
    """Replace (or append) the section ``title`` of docs/benchmarks.md."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    begin, end = f"<!-- bench:{slug} -->", f"<!-- /bench:{slug} -->"
    date = datetime.date.today().isoformat()
    section = f"{begin}\n## {title}\n\n`{command}` — run {date}\n\n{body}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text)
