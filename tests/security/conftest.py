"""Throwaway certificates and TLS server processes for the security tests."""

from __future__ import annotations

import os
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.conftest import SERVER, free_port

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # what clients trust
    cert: Path  # server certificate chain
    key: Path  # server private key


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A private CA and a certificate it signed for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.private_key_pem.write_to_path(str(files.key))
    for index, pem in enumerate(issued.cert_chain_pems):
        pem.write_to_path(str(files.cert), append=index > 0)
    return files


def clean_env() -> dict[str, str]:
    """The environment for child processes, without the developer's TINGXIE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_https_healthy(port: int, ca: Path, timeout: float = 20.0) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            url = f"https://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"TLS server on port {port} not healthy after {timeout} s")


@dataclass(frozen=True)
class TlsServer:
    port: int
    files: TlsFiles

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def tls_server(tls_files: TlsFiles) -> Iterator[TlsServer]:
    """``tingxie-server --engine fake --tls-cert ... --tls-key ...`` on loopback."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *SERVER,
            "--engine",
            "fake",
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            "--tls-cert",
            str(tls_files.cert),
            "--tls-key",
            str(tls_files.key),
        ],
        env=clean_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_https_healthy(port, tls_files.ca)
        yield TlsServer(port, tls_files)
    finally:
        proc.terminate()
        proc.wait(10)
