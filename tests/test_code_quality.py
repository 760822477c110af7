"""Lint and type checks run with the suite, so CI enforces them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

#: Pure cores and the protocol: strictly typed (see pyproject's [tool.mypy]).
TYPED = [
    "protocol",
    "server/engine/base.py",
    "server/engine/agreement.py",
    "server/engine/fake.py",
    "server/engine/full_decode.py",
    "server/audio_buffer.py",
    "server/scheduler.py",
    "server/slots.py",
    "server/config.py",
    "server/access.py",
    "server/log_limits.py",
    "server/tls.py",
    "server/engine/qwen",
    "desktop/audio/segmenter.py",
    "desktop/audio/timeline.py",
    "desktop/audio/vad.py",
    "desktop/resources.py",
    "desktop/sounds.py",
    "desktop/selfcheck.py",
    "desktop/ui/icons.py",
    "desktop/ui/look.py",
    "desktop/output",
    "desktop/hotkey",
    "desktop/win32/rawinput.py",
    "desktop/win32/shell.py",
    "desktop/win32/foreground.py",
    "desktop/win32/instance.py",
    "desktop/win32/login.py",
    "desktop/win32/keyboard.py",
    "desktop/win32/clipboard.py",
    "desktop/win32/elevation.py",
    "desktop/win32/output.py",
    "desktop/win32/wsl_distros.py",
    "desktop/settings.py",
    "desktop/launcher.py",
    "desktop/loopback.py",
    "desktop/setup",
    "desktop/ui/first_run.py",
    "server/download.py",
    "desktop/coordinator.py",
    "desktop/dictation.py",
    "tests/hardening/fuzz.py",
]


#: argparse's private names: its module's underscored classes and a parser's internals.
PRIVATE_ARGPARSE = re.compile(
    r"argparse\._\w|from argparse import[^\n]*\b_\w"
    r"|\._(?:actions|option_string_actions|action_groups|mutually_exclusive_groups"
    r"|group_actions|registries)\b"
)


def test_no_private_argparse_names() -> None:
    """Parsers are read through public calls only (the server's options: its own table)."""
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("desktop", "protocol", "server", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.resolve() != Path(__file__).resolve()  # this test names what it looks for
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE_ARGPARSE.search(line)
    ]
    assert hits == [], "private argparse names:\n" + "\n".join(hits)


def test_ruff_is_clean() -> None:
    if shutil.which("ruff") is None:
        pytest.skip("ruff not installed (pip install -e '.[test]')")
    out = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_on_protocol_and_pure_cores() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", *TYPED], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
