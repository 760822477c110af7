"""``tingxie-server`` in a terminal: a model that cannot load ends it quickly with what
to do next; the tray app's servers stay up to report it; the hub's retries are short."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from server.app import _serve_until_signal
from server.config import parse_config
from server.download import (
    HUB_HTTP_LOGGER,
    HubRetrySummary,
    cached_locally,
    hub_unreachable,
    is_hub_model_id,
    offline_if_hub_unreachable,
    short_reason,
)
from server.engine.fake import FakeGenerator
from server.engine.full_decode import FullDecodeEngine
from tests.conftest import free_port

ROOT = Path(__file__).parents[2]


class NoModelGenerator(FakeGenerator):
    """Loads the way a missing model does: it raises."""

    async def load(self) -> None:
        raise OSError("Qwen/Qwen3-ASR-1.7B is not a folder and the hub cannot be reached")


def failing_engine() -> FullDecodeEngine:
    return FullDecodeEngine(NoModelGenerator())


async def test_a_failed_load_ends_the_server_with_next_steps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = parse_config(["--port", "0", "--shutdown-timeout", "1"], env={})
    began = time.monotonic()
    code = await asyncio.wait_for(_serve_until_signal(config, failing_engine(), None), 20)
    assert code == 1 and time.monotonic() - began < 10
    err = capsys.readouterr().err
    assert "could not be loaded: OSError: Qwen/Qwen3-ASR-1.7B is not a folder" in err
    assert "--model DIR" in err and "--engine fake" in err and "NATO" in err
    assert "python -m server.download --repo Qwen/Qwen3-ASR-1.7B --dest DIR" in err


async def test_the_tray_apps_server_stays_up_to_report_the_failure() -> None:
    port = free_port()
    env = {"TINGXIE_KEEP_SERVING_ON_LOAD_FAILURE": "1"}  # what the launcher passes
    config = parse_config(["--port", str(port)], env=env)
    assert config.keep_serving_on_load_failure
    serving = asyncio.create_task(_serve_until_signal(config, failing_engine(), None))
    try:
        body: dict[str, object] = {}
        deadline = time.monotonic() + 20
        while body.get("model_state") != "failed":
            assert time.monotonic() < deadline and not serving.done()
            await asyncio.sleep(0.05)
            body = await asyncio.to_thread(health, port)
        assert "not a folder" in str(body["model_error"])
        await asyncio.sleep(0.3)
        assert not serving.done()  # still listening
    finally:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving


def health(port: int) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            body: dict[str, object] = json.loads(response.read())
    except urllib.error.HTTPError as err:  # 503 while not ready
        body = json.loads(err.read())
    except OSError:
        body = {}
    return body


def test_without_a_network_the_default_command_fails_fast_and_clearly(tmp_path: Path) -> None:
    """No arguments (the hub model id), no hub, nothing in the cache: an exit in seconds
    with next steps, not a minute of retries and then listening forever."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf"),  # an empty cache
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens: unreachable
    }
    began = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "server", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    took = time.monotonic() - began
    assert out.returncode in (1, 2), out.stderr[-2000:]  # 2: no Qwen3-ASR engine installed
    assert "--engine fake" in out.stderr and "Traceback" not in out.stderr
    if out.returncode == 1:  # the engine is installed: the load failed, from the cache only
        assert "--model DIR" in out.stderr
        assert "looking for Qwen/Qwen3-ASR-1.7B in the local cache only" in out.stderr
        assert "Retrying in" not in out.stderr
    print(f"failed in {took:.1f} s")
    assert took < 120


def test_a_model_in_the_local_cache_is_found(tmp_path: Path) -> None:
    """Only an uncached model fails before loading: one in the hub cache is loaded from it
    (the layout huggingface_hub writes: refs/main names the snapshot)."""
    pytest.importorskip("huggingface_hub")
    repo = tmp_path / "models--Qwen--Qwen3-ASR-1.7B"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert not cached_locally("Qwen/Qwen3-ASR-1.7B", tmp_path)
    (snapshot / "config.json").write_text("{}")
    assert cached_locally("Qwen/Qwen3-ASR-1.7B", tmp_path)
    assert not cached_locally("Qwen/Qwen3-ASR-0.6B", tmp_path)


def test_hub_checks() -> None:
    assert is_hub_model_id("Qwen/Qwen3-ASR-1.7B")
    assert not is_hub_model_id("/models/qwen") and not is_hub_model_id(str(ROOT))
    dead = {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    assert "127.0.0.1" in hub_unreachable(dead)
    proxied = {**dead, "HTTPS_PROXY": "http://proxy:3128"}  # only a request can tell
    assert hub_unreachable(proxied) == ""
    env = dict(dead)
    assert offline_if_hub_unreachable("Qwen/Qwen3-ASR-0.6B", env) and env["HF_HUB_OFFLINE"] == "1"
    env = dict(dead)
    assert offline_if_hub_unreachable(str(ROOT), env) == "" and "HF_HUB_OFFLINE" not in env


def test_hub_retries_are_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    """huggingface_hub's own retry loop against a dead port, through the summary."""
    hub_utils = pytest.importorskip("huggingface_hub.utils")
    summary = HubRetrySummary()
    logger = logging.getLogger(HUB_HTTP_LOGGER)
    logger.addFilter(summary)
    url = f"http://127.0.0.1:{free_port()}/Qwen/Qwen3-ASR-1.7B/resolve/main/config.json"
    try:
        with caplog.at_level(logging.WARNING, logger=HUB_HTTP_LOGGER), pytest.raises(OSError):
            hub_utils.http_backoff("HEAD", url, max_retries=2, base_wait_time=0.01)
    finally:
        logger.removeFilter(summary)
    lines = [r.getMessage() for r in caplog.records if r.name == HUB_HTTP_LOGGER]
    assert len(lines) == 2, lines
    for n, line in enumerate(lines, start=1):
        assert line.startswith(f"model hub: HEAD {url}: ")
        assert f"retry {n}/2 in " in line and "\n" not in line and len(line) < 250


def test_the_hubs_lines_are_printed_once() -> None:
    """Its own handler (added when its logging module is imported) goes, where the
    process has a root handler of its own (the server's basicConfig)."""
    pytest.importorskip("huggingface_hub")
    code = (
        "import logging; logging.basicConfig(format='root: %(message)s')\n"
        "from server.download import summarise_hub_retries; summarise_hub_retries()\n"
        "logging.getLogger('huggingface_hub.file_download').warning('once')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.stderr.splitlines() == ["root: once"], out.stderr


def test_short_reasons() -> None:
    resolve = (
        "(MaxRetryError('HTTPSConnectionPool(host=\\'huggingface.co\\', port=443): Max "
        'retries exceeded with url: /x (Caused by NameResolutionError("HTTPSConnection(host='
        "\\'huggingface.co\\', port=443): Failed to resolve \\'huggingface.co\\' ([Errno -2] "
        "Name or service not known)\"))'), '(Request ID: 1)')"
    )
    assert short_reason(resolve.replace("\\'", "'")) == "Failed to resolve 'huggingface.co'"
    assert short_reason("[Errno 111] Connection refused") == "[Errno 111] Connection refused"
    assert short_reason("") == "failed"
