"""Benchmark: the packaged tray app (build.spec): build time, size on disk, start-up.

Build: ``pyinstaller build.spec`` into a fresh work folder, once with ``--clean``
(PyInstaller's caches emptied first) and once more with its caches filled. Size: the
one-folder bundle on disk, by component, and zipped (what a download weighs).

Start-up, the bundle side by side with the same app run from source
(``python -m desktop.app``), alternating, each process started afresh:

- ``--version``: interpreter and argument parsing only;
- ``--self-check``: everything the app loads (Qt, onnxruntime and the VAD model,
  PortAudio, icons and sounds), without a server;
- app ready: the real start-up (logging, settings, single instance, tray or its
  window, microphone pipeline, hotkeys) until the app logs its hotkeys, offscreen, with
  the server unreachable.

    python tests/bench/bench_bundle.py [--runs 15] [--dist DIR] [--no-write]

``--dist`` times an existing build instead of building (no build rows then).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.report import machine_description, percentile, write_section  # noqa: E402
from tests.packaging import pyinstaller_command  # noqa: E402

READY = re.compile(r"global hotkeys (bound|unavailable)")


def build(workdir: Path, clean: bool) -> tuple[Path, float]:
    t0 = time.perf_counter()
    subprocess.run(pyinstaller_command(workdir, clean), cwd=ROOT, check=True, capture_output=True)
    return workdir / "dist" / "tingxie", time.perf_counter() - t0


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return 0 if path.is_symlink() else path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def components(bundle: Path) -> dict[str, int]:
    """Bytes per part of the bundle (first matching rule wins)."""
    internal = bundle / "_internal"
    rules: list[tuple[str, Callable[[str], bool]]] = [
        ("Qt (PySide6)", lambda n: n.startswith(("PySide6", "shiboken6", "libQt6", "libicu"))),
        ("onnxruntime", lambda n: n.startswith("onnxruntime")),
        ("numpy", lambda n: n.startswith("numpy")),
        (
            "Python runtime",
            lambda n: n.startswith(("libpython", "python3", "base_library", "lib-dynload")),
        ),
        ("VAD model", lambda n: n == "models"),
        ("icons and sounds", lambda n: n == "resources"),
    ]
    sizes = {name: 0 for name, _ in rules} | {"other libraries and modules": 0}
    for entry in internal.iterdir():
        name = next((n for n, rule in rules if rule(entry.name)), "other libraries and modules")
        sizes[name] += disk_bytes(entry)
    sizes["program"] = sum(disk_bytes(p) for p in bundle.iterdir() if p.is_file())
    return sizes


def zipped_bytes(bundle: Path, scratch: Path) -> int:
    archive = shutil.make_archive(str(scratch / "tingxie"), "zip", bundle.parent, bundle.name)
    return Path(archive).stat().st_size


def app_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TINGXIE_", "PYTHON", "VIRTUAL_ENV"))
    }
    return env | {"QT_QPA_PLATFORM": "offscreen"}


def time_exit(command: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=app_env(), cwd=ROOT)
    return time.perf_counter() - t0


def time_ready(command: list[str], scratch: Path) -> float:
    """Process start → the app logs its hotkeys (the last step of start-up), read from
    its log file every 2 ms."""
    settings = Path(tempfile.mkdtemp(dir=scratch))
    (settings / "tingxie.ini").write_text("[General]\nserver_url=ws://127.0.0.1:9\n")
    log = settings / "logs" / "tingxie.log"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*command, "--settings-dir", str(settings), "--no-tray"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=app_env(),
        cwd=ROOT,
    )
    try:
        while proc.poll() is None and time.perf_counter() - t0 < 60:
            if log.exists() and READY.search(log.read_text(errors="replace")):
                return time.perf_counter() - t0
            time.sleep(0.002)
        raise RuntimeError(f"{command} was not ready (exit status {proc.poll()})")
    finally:
        proc.terminate()
        proc.wait(10)


def measure(runs: int, bundle: Path, scratch: Path) -> dict[str, dict[str, list[float]]]:
    programs = {
        "source": [sys.executable, "-m", "desktop.app"],
        "bundle": [str(bundle / "tingxie")],
    }
    results: dict[str, dict[str, list[float]]] = {
        what: {name: [] for name in programs} for what in ("version", "self-check", "ready")
    }
    for _ in range(runs):
        for name, command in programs.items():  # alternate, so drift hits both alike
            results["version"][name].append(time_exit([*command, "--version"]))
            results["self-check"][name].append(time_exit([*command, "--self-check"]))
            results["ready"][name].append(time_ready(command, scratch))
    return results


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 10e6 else f"{n / 1e6:.1f} MB"


def render(
    builds: dict[str, float],
    sizes: dict[str, int],
    total: int,
    zipped: int,
    timings: dict[str, dict[str, list[float]]],
    runs: int,
) -> str:
    lines = [
        f"Machine: {machine_description()}. PyInstaller "
        f"{__import__('PyInstaller').__version__}, Linux build.",
        "",
    ]
    if builds:
        lines += ["| build | wall time |", "|---|---|"]
        lines += [f"| {name} | {seconds:.0f} s |" for name, seconds in builds.items()]
        lines.append("")
    lines += [
        f"Bundle: **{mb(total)}** on disk, {mb(zipped)} zipped.",
        "",
        "| part | size |",
        "|---|---|",
    ]
    lines += [
        f"| {name} | {mb(size)} |"
        for name, size in sorted(sizes.items(), key=lambda item: -item[1])
    ]
    labels = {
        "version": "`--version`",
        "self-check": "`--self-check` (no server)",
        "ready": "start → tray ready",
    }
    lines += [
        "",
        f"Start-up, {runs} runs each, files in the page cache (warm start):",
        "",
        "| | source p50 | source p95 | bundle p50 | bundle p95 | bundle / source (p50) |",
        "|---|---|---|---|---|---|",
    ]
    for what, label in labels.items():
        source, bundled = timings[what]["source"], timings[what]["bundle"]
        s50, b50 = statistics.median(source), statistics.median(bundled)
        lines.append(
            f"| {label} | {s50 * 1000:.0f} ms | {percentile(source, 0.95) * 1000:.0f}"
            f" ms | {b50 * 1000:.0f} ms | {percentile(bundled, 0.95) * 1000:.0f} ms"
            f" | {b50 / s50:.2f} |"
        )
    lines += [
        "",
        "The Linux bundle carries what Windows provides itself (ICU's 31 MB data "
        "library, the GTK libraries of Qt's GTK theme plugin); the Windows folder "
        "has not been built here.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--dist", type=Path, default=None, help="an existing dist/tingxie")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        builds: dict[str, float] = {}
        bundle = args.dist
        if bundle is None:
            bundle, builds["clean (`--clean`, PyInstaller caches emptied)"] = build(
                scratch / "clean", clean=True
            )
            bundle, builds["again (caches filled, fresh work folder)"] = build(
                scratch / "again", clean=False
            )
        sizes = components(bundle)
        body = render(
            builds,
            sizes,
            disk_bytes(bundle),
            zipped_bytes(bundle, scratch),
            measure(args.runs, bundle, scratch),
            args.runs,
        )
    print(body)
    if not args.no_write:
        command = "python tests/bench/bench_bundle.py"
        if args.runs != 15:
            command += f" --runs {args.runs}"
        write_section("Packaged app: build time, size, start-up", command, body)


if __name__ == "__main__":
    main()
