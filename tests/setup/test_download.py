"""``python -m server.download`` against a model hub on loopback, read by the setup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.setup.progress import DownloadEvent, parse_download_line
from server.download import DownloadError, check_disk
from tests.setup.fake_hub import Repo, fake_hub

# huggingface_hub writes in 10 MB pieces: 24 MiB served at 24 MB/s shows two steps in
# between, each visible for about 0.4 s (progress is polled every 0.05 s).
WEIGHTS = os.urandom(24 * 1024 * 1024)
FILES = {"config.json": b'{"model_type": "qwen3_asr"}', "model.safetensors": WEIGHTS}


def run_download(endpoint: str, dest: Path, repo: str = "Qwen/Tiny-ASR") -> list[DownloadEvent]:
    # Only this test's hub settings: others (HF_HUB_OFFLINE, set by the vLLM tests'
    # conftest when collected in the same run, a developer's HF_ENDPOINT) must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env["HF_HOME"] = str(dest.parent / "hf-home")
    out = subprocess.run(
        [sys.executable, "-m", "server.download", "--repo", repo, "--dest", str(dest),
         "--endpoint", endpoint, "--interval", "0.05"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    events = [e for line in out.stdout.splitlines() if (e := parse_download_line(line))]
    assert events, out.stdout + out.stderr
    assert (out.returncode == 0) == (events[-1].event == "done"), out.stderr
    return events


def test_download_reports_progress_and_an_absolute_folder(tmp_path: Path) -> None:
    repo = Repo(dict(FILES), bytes_per_second=24e6)
    with fake_hub({"Qwen/Tiny-ASR": repo}) as endpoint:
        relative = Path(os.path.relpath(tmp_path / "models" / "tiny", Path.cwd()))
        events = run_download(endpoint, relative)
    done = events[-1]
    assert done.event == "done" and Path(done.path).is_absolute()
    assert Path(done.path) == (tmp_path / "models" / "tiny").resolve()
    assert (Path(done.path) / "model.safetensors").read_bytes() == WEIGHTS
    progress = [e for e in events if e.event == "progress"]
    total = len(WEIGHTS) + len(FILES["config.json"])
    assert all(e.total == total for e in progress)
    assert [e.done for e in progress] == sorted(e.done for e in progress)
    assert progress[-1].done == total
    assert any(0 < e.done < total for e in progress), [e.done for e in progress]


def test_finished_download_is_kept_without_the_hub_but_a_partial_one_is_not(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "m"
    with fake_hub({"Qwen/Tiny-ASR": Repo(dict(FILES))}) as endpoint:
        assert run_download(endpoint, dest)[-1].event == "done"
    gone = "http://127.0.0.1:9"  # nothing listens: the hub is unreachable
    again = run_download(gone, dest)
    assert again[-1].event == "done" and again[-2].done == again[-2].total > 0
    # A file was damaged (or the last run stopped half way): that needs the hub.
    (dest / "model.safetensors").write_bytes(WEIGHTS[:1000])
    failed = run_download(gone, dest)[-1]
    assert failed.event == "error" and failed.kind == "network"


@pytest.mark.parametrize(
    ("repo", "kind"), [("Qwen/No-Such-Model", "not_found"), ("Qwen/Gated-ASR", "auth")]
)
def test_hub_refusals_are_named(tmp_path: Path, repo: str, kind: str) -> None:
    repos = {"Qwen/Tiny-ASR": Repo(dict(FILES)), "Qwen/Gated-ASR": Repo(dict(FILES), gated=True)}
    with fake_hub(repos) as endpoint:
        event = run_download(endpoint, tmp_path / "m", repo=repo)[-1]
    assert event.event == "error" and event.kind == kind and event.message


def test_not_enough_disk_is_found_before_downloading(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as failure:
        check_disk(tmp_path / "not" / "yet", missing_bytes=10**18)
    assert failure.value.kind == "disk" and "GiB free" in str(failure.value)
    check_disk(tmp_path, missing_bytes=1)
