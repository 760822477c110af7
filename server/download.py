"""``python -m server.download``: fetch a model from the Hugging Face hub into a folder.

The tray app's first-run setup runs this inside WSL (or on this PC) and reads its
output: every line that starts with ``tingxie-download`` carries one JSON event —

    {"event": "progress", "done": <bytes>, "total": <bytes>}
    {"event": "done", "path": "/absolute/folder"}
    {"event": "error", "kind": "network|auth|not_found|disk|failed", "message": "..."}

Other lines (warnings from libraries) may appear in between. Running it again is safe:
a folder that was fully downloaded before is checked against its record and kept
without asking the hub; a partial one is resumed.

The folder is printed as an absolute path: vLLM and transformers read a relative path
that contains ``../`` as a hub model id and fail (the article's first pitfall).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

LINE_PREFIX = "tingxie-download "
DEFAULT_REPO = "Qwen/Qwen3-ASR-1.7B"
RECORD_NAME = ".tingxie-download.json"  # files and sizes of a finished download
DISK_MARGIN_BYTES = 512 * 1024 * 1024  # room left for the filesystem after the download


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int


class DownloadError(Exception):
    """A failure the setup can explain; ``kind`` picks the advice."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def event_line(event: str, **fields: Any) -> str:
    return LINE_PREFIX + json.dumps({"event": event, **fields}, ensure_ascii=False)


def folder_bytes(folder: Path) -> int:
    """Bytes of all files below ``folder`` (finished files and partial downloads)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:  # renamed while we looked
                continue
    return total


def recorded_files(folder: Path) -> list[RemoteFile]:
    """The files of an earlier run that finished here, if every one is still whole."""
    try:
        record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
        files = [RemoteFile(str(f["name"]), int(f["size"])) for f in record["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    whole = all(
        (folder / f.name).is_file() and (folder / f.name).stat().st_size == f.size for f in files
    )
    return files if whole else []


def classify(exc: BaseException) -> DownloadError:
    """Turn the hub client's exceptions into the kinds the setup explains."""
    if isinstance(exc, DownloadError):
        return exc
    from huggingface_hub import errors as hub_errors

    network: tuple[type[BaseException], ...] = (
        hub_errors.LocalEntryNotFoundError,
        hub_errors.OfflineModeIsEnabled,
    )
    try:  # huggingface_hub before 1.0 speaks HTTP through requests, from 1.0 through httpx
        from requests import exceptions as http_errors

        network += (http_errors.ConnectionError, http_errors.Timeout)
    except ImportError:
        pass
    try:
        import httpx

        network += (httpx.TransportError,)
    except ImportError:
        pass

    text = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, hub_errors.GatedRepoError):
        return DownloadError("auth", text)
    if isinstance(exc, (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError)):
        return DownloadError("not_found", text)
    if isinstance(exc, hub_errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return DownloadError("auth", text)
        if status == 404:
            return DownloadError("not_found", text)
        return DownloadError("network", text)
    if isinstance(exc, network):
        return DownloadError("network", text)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError("disk", text)
    return DownloadError("failed", text)


def list_files(repo: str, revision: str, endpoint: str | None) -> list[RemoteFile]:
    """The repository's files and sizes (one hub request; raises when it is unreachable)."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint).model_info(repo, revision=revision, files_metadata=True)
    return [RemoteFile(s.rfilename, int(s.size or 0)) for s in info.siblings or []]


def check_disk(folder: Path, missing_bytes: int) -> None:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < missing_bytes + DISK_MARGIN_BYTES:
        gib = 1024**3
        raise DownloadError(
            "disk",
            f"{free / gib:.1f} GiB free in {probe}, the model needs "
            f"{(missing_bytes + DISK_MARGIN_BYTES) / gib:.1f} GiB more",
        )


def download(
    repo: str,
    dest: Path,
    *,
    revision: str = "main",
    endpoint: str | None = None,
    emit: Callable[[str], None] = print,
    interval_s: float = 0.5,
) -> Path:
    """Download ``repo`` into ``dest`` with progress events; returns the absolute folder."""
    from huggingface_hub import snapshot_download

    folder = dest.expanduser().resolve()
    if done_before := recorded_files(folder):
        size = sum(f.size for f in done_before)
        emit(event_line("progress", done=size, total=size))
        return folder
    files = list_files(repo, revision, endpoint)
    total = sum(f.size for f in files)
    present = folder_bytes(folder) if folder.exists() else 0
    check_disk(folder, max(0, total - present))
    emit(event_line("progress", done=min(present, total), total=total))

    finished = threading.Event()

    def report() -> None:
        last = -1
        while not finished.wait(interval_s):
            done = min(folder_bytes(folder), total) if folder.exists() else 0
            if done != last:
                emit(event_line("progress", done=done, total=total))
                last = done

    watcher = threading.Thread(target=report, name="download-progress", daemon=True)
    watcher.start()
    try:
        snapshot_download(repo, revision=revision, local_dir=str(folder), endpoint=endpoint)
    finally:
        finished.set()
        watcher.join()
    record = {"repo": repo, "revision": revision, "files": [f.__dict__ for f in files]}
    (folder / RECORD_NAME).write_text(json.dumps(record), encoding="utf-8")
    emit(event_line("progress", done=total, total=total))
    return folder


# ---------------------------------------------------------------- the hub, summarised

_REQUEST_FAILED = re.compile(
    r"^'(?P<error>.*)' thrown while requesting (?P<method>\S+) (?P<url>\S+)$", re.S
)
_HTTP_FAILED = re.compile(
    r"^HTTP Error (?P<status>\d+) thrown while requesting (?P<method>\S+) (?P<url>\S+)$"
)
_RETRYING = re.compile(r"^Retrying in (?P<wait>[\d.]+)s \[Retry (?P<n>\d+)/(?P<of>\d+)\]\.$")
_REASONS = (
    re.compile(r"Failed to resolve '[^']+'"),
    re.compile(r"\[Errno -?\d+\] [^)'\"\\]+"),
    re.compile(r"(?:Read|Connect)?[Tt]imeout[A-Za-z]*"),
    re.compile(r"Connection refused"),
)
#: huggingface_hub's logger of its HTTP retries (a public logging name, not an import).
HUB_HTTP_LOGGER = "huggingface_hub.utils._http"


def short_reason(error: str) -> str:
    """The words that say why a request failed, out of urllib3's nested exception text."""
    for pattern in _REASONS:
        if match := pattern.search(error):
            return match.group(0).strip()
    lines = error.strip().splitlines()
    return lines[0][:120] if lines else "failed"


class HubRetrySummary(logging.Filter):
    """One line per retry of the model hub instead of two long ones.

    huggingface_hub logs every failed try as the whole exception chain (urllib3's
    ``MaxRetryError(...)`` with the URL twice) and then ``Retrying in 4s [Retry 3/5].``;
    without a network that is dozens of lines before the real error. Each pair becomes
    ``model hub: GET <url>: <reason>; retry 3/5 in 4 s``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[int, str] = {}  # per thread: the failure its retry line names

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        thread = record.thread or 0
        if match := _REQUEST_FAILED.match(text):
            reason = short_reason(match["error"])
            self._pending[thread] = f"{match['method']} {match['url']}: {reason}"
            return False
        if match := _HTTP_FAILED.match(text):
            self._pending[thread] = f"{match['method']} {match['url']}: HTTP {match['status']}"
            return False
        if match := _RETRYING.match(text):
            failed = self._pending.pop(thread, "a request failed")
            record.msg = (
                f"model hub: {failed}; retry {match['n']}/{match['of']} in {match['wait']} s"
            )
            record.args = ()
        return True


def summarise_hub_retries() -> None:
    """Install :class:`HubRetrySummary` once, and print the hub's lines once.

    huggingface_hub gives its logger a handler of its own when its logging module is
    first imported; with the server's root handler that printed every line twice (once
    bare, once with the time). Where the root logger has handlers, the hub's own go.
    """
    http = logging.getLogger(HUB_HTTP_LOGGER)
    if not any(isinstance(f, HubRetrySummary) for f in http.filters):
        http.addFilter(HubRetrySummary())
    try:  # its import adds the handler: do it now, not in the middle of loading a model
        import huggingface_hub.utils.logging  # noqa: F401
    except ImportError:
        return
    hub = logging.getLogger("huggingface_hub")
    if logging.getLogger().handlers:
        for handler in list(hub.handlers):
            hub.removeHandler(handler)


def is_hub_model_id(model: str) -> bool:
    """``Qwen/Qwen3-ASR-1.7B`` (fetched from the hub), not a folder on this machine."""
    return not Path(model).expanduser().exists() and not model.startswith(("/", ".", "~"))


def hub_unreachable(env: Mapping[str, str], timeout_s: float = 3.0) -> str:
    """Why the model hub cannot be reached from here ("" when it can, or when a proxy is
    set: then only a real request can tell). One connection, a few seconds at most."""
    endpoint = env.get("HF_ENDPOINT", "") or "https://huggingface.co"
    if any(env.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return ""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((host, port), timeout=timeout_s):
            return ""
    except (OSError, ValueError) as exc:
        return f"{host}: {exc}"


def offline_if_hub_unreachable(model: str, env: MutableMapping[str, str]) -> str:
    """Before loading a hub model id: when the hub cannot be reached, load from the local
    cache only (``HF_HUB_OFFLINE=1``), so a missing model fails in seconds instead of
    after a minute of retries. Returns why the hub is unreachable ("" if it is not)."""
    if not is_hub_model_id(model) or env.get("HF_HUB_OFFLINE"):
        return ""
    reason = hub_unreachable(env)
    if reason:
        log.warning(
            "the model hub cannot be reached (%s): looking for %s in the local cache only",
            reason,
            model,
        )
        env["HF_HUB_OFFLINE"] = "1"
    return reason


def cached_locally(model: str, cache_dir: Path | None = None) -> bool:
    """Whether the hub model id has its config in the local hub cache (``cache_dir``, by
    default huggingface_hub's own); without huggingface_hub nothing is cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(model, "config.json", cache_dir=cache_dir), str)


def load_failure_advice(model: str, error: str) -> str:
    """What a terminal user of ``tingxie-server`` reads when the model does not load."""
    return (
        f"tingxie-server: error: the model {model} could not be loaded: {error}\n"
        "  --model DIR    load a model folder on this machine; fetch one with\n"
        f"                 python -m server.download --repo {DEFAULT_REPO} --dest DIR\n"
        "  --engine fake  try tingxie without a model (it answers with NATO-alphabet words)"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m server.download",
        description="Download a Qwen3-ASR model for tingxie-server, with progress lines.",
    )
    p.add_argument("--repo", required=True, help="hub model id, e.g. Qwen/Qwen3-ASR-1.7B")
    p.add_argument("--dest", required=True, type=Path, help="folder to download into")
    p.add_argument("--revision", default="main")
    p.add_argument(
        "--endpoint",
        default=None,
        help="hub address (default: HF_ENDPOINT or huggingface.co; e.g. a mirror)",
    )
    p.add_argument("--interval", type=float, default=0.5, help="seconds between progress lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summarise_hub_retries()
    from huggingface_hub.utils.tqdm import disable_progress_bars

    disable_progress_bars()  # our own progress lines replace the library's bars

    def emit(line: str) -> None:
        print(line, flush=True)

    try:
        path = download(
            args.repo,
            args.dest,
            revision=args.revision,
            endpoint=args.endpoint,
            emit=emit,
            interval_s=args.interval,
        )
    except Exception as exc:  # every failure becomes one error event the setup can read
        failure = classify(exc)
        log.debug("download failed", exc_info=True)
        emit(event_line("error", kind=failure.kind, message=str(failure)))
        return 1
    emit(event_line("done", path=str(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
