"""A model hub on loopback that answers the requests huggingface_hub makes for a download.

Only what ``model_info(files_metadata=True)`` and ``snapshot_download`` use: the
revision endpoint with the file list, and ``resolve`` (HEAD for metadata, GET for the
bytes). Errors are the hub's: 401 with ``X-Error-Code: RepoNotFound`` for an unknown or
private repository, 403 ``GatedRepo`` for a gated one.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Repo:
    files: dict[str, bytes]
    gated: bool = False
    bytes_per_second: float = 0.0  # 0: as fast as possible
    requests: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    repos: dict[str, Repo]

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _error(self, status: int, code: str) -> None:
        body = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _find(self, path: str) -> tuple[Repo | None, str, str]:
        for name, repo in self.repos.items():
            if path.startswith(f"/api/models/{name}/revision/"):
                return repo, "info", ""
            prefix = f"/{name}/resolve/"
            if path.startswith(prefix):
                _revision, _, filename = path[len(prefix) :].partition("/")
                return repo, "file", unquote(filename)
        return None, "", ""

    def _handle(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        repo, what, filename = self._find(path)
        if repo is None:
            self._error(401, "RepoNotFound")
            return
        repo.requests.append(f"{self.command} {path}")
        if repo.gated:
            self._error(403, "GatedRepo")
            return
        if what == "info":
            siblings = [
                {"rfilename": n, "size": len(b), "blobId": hashlib.sha1(b).hexdigest()}
                for n, b in repo.files.items()
            ]
            body = json.dumps({"id": path, "sha": COMMIT, "siblings": siblings}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if filename not in repo.files:
            self._error(404, "EntryNotFound")
            return
        data = repo.files[filename]
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not send_body:
            return
        step = 64 * 1024
        for start in range(0, len(data), step):
            self.wfile.write(data[start : start + step])
            if repo.bytes_per_second:
                time.sleep(step / repo.bytes_per_second)

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def do_GET(self) -> None:
        self._handle(send_body=True)


@contextmanager
def fake_hub(repos: dict[str, Repo]) -> Iterator[str]:
    """Serve ``repos`` (``"org/name"`` → files); yields the endpoint URL."""
    handler = type("Handler", (_Handler,), {"repos": repos})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
