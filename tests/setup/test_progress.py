"""Reading pip, download and server output: progress texts and failure reasons."""

from __future__ import annotations

import re
from pathlib import Path

from desktop.setup.progress import (
    PipProgress,
    download_fraction,
    download_text,
    parse_download_line,
    pip_failure,
    server_failure,
    venv_failure,
)
from tests.setup.recorded import DATA

GPU = DATA / "gpu_ubuntu"


def test_pip_lines_become_status_texts() -> None:
    pip = PipProgress()
    texts = [pip.feed(line) for line in (GPU / "pip_install.out").read_text().splitlines()]
    shown = [t for t in texts if t is not None]
    assert shown[0] == "Finding packages: tingxie==0.1.0 (1 so far)"
    assert "Downloading vllm (436.2 MB)" in shown
    assert shown[-2:] == ["Installing 6 packages…", "Installed."]
    assert pip.feed("  Attempting uninstall: pip") is None


def test_download_lines() -> None:
    event = parse_download_line('tingxie-download {"event": "progress", "done": 5, "total": 20}')
    assert event is not None and download_fraction(event) == 0.25
    assert download_text(event) == "Downloading the model: 0.00 of 0.00 GB"
    assert parse_download_line("WARNING huggingface_hub: slow") is None
    assert parse_download_line("tingxie-download {broken") is None


def test_pip_failures() -> None:
    missing = pip_failure((GPU / "pip_not_found.out").read_text(), "tingxie[server,vllm]==0.1.0")
    assert missing.code == "package_not_found"
    offline = pip_failure(
        "WARNING: Retrying (Retry(total=4, ...)) after connection broken by "
        "'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object>: "
        "Failed to establish a new connection: [Errno -3] Temporary failure in name "
        "resolution')': /simple/tingxie/\n"
        "ERROR: Could not find a version that satisfies the requirement tingxie==0.1.0 "
        "(from versions: none)\nERROR: No matching distribution found for tingxie==0.1.0\n",
        "tingxie==0.1.0",
    )
    assert offline.code == "network_failed"  # not "no such package": pip never asked
    full = pip_failure("ERROR: Could not install packages due to an OSError: [Errno 28] "
                       "No space left on device\n", "x")  # fmt: skip
    assert full.code == "not_enough_disk" and "0.0 GiB" not in full.message
    other = pip_failure("ERROR: Failed building wheel for nagisa\n", "x")
    assert other.code == "install_failed" and "nagisa" in other.message


def test_venv_failures() -> None:
    assert venv_failure((GPU / "venv_ensurepip.out").read_text(), "U").code == "venv_unavailable"
    full = venv_failure("Error: [Errno 28] No space left on device: '/home/u/x'", "U")
    assert full.code == "not_enough_disk" and "0.0 GiB" not in full.message


def test_server_failures() -> None:
    oom = server_failure("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate", 1)
    assert oom.code == "server_out_of_memory"
    kv = server_failure("ValueError: To serve at least one request with the models's max "
                        "seq len (65536), (7.00 GiB KV cache) is needed", 1)  # fmt: skip
    assert kv.code == "server_out_of_memory"
    port = server_failure(
        "tingxie-server: error: cannot listen on 127.0.0.1:8765: [Errno 98] error while "
        "attempting to bind on address ('127.0.0.1', 8765): address already in use",
        8765,
    )
    assert port.code == "port_in_use" and "8765" in port.message
    other = server_failure("$ tingxie-server --model /m\nloading\nRuntimeError: bad config\n", 1)
    assert other.code == "server_exited" and "RuntimeError: bad config" in other.message


def test_every_problem_is_documented() -> None:
    """docs/setup.md lists each failure the setup can report, by its code."""
    root = Path(__file__).parents[2]
    sources = (root / "desktop" / "setup" / "problems.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'Problem\(\s*"([a-z_0-9]+)"', sources))
    assert len(codes) > 25
    doc = (root / "docs" / "setup.md").read_text(encoding="utf-8")
    assert not [code for code in sorted(codes) if f"`{code}`" not in doc]
