"""Read the output of the setup's programs: progress while they run, the reason when
they fail (pure; lines in, facts out)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from desktop.setup import problems
from desktop.setup.problems import Problem

#: The prefix of ``python -m server.download``'s event lines (its module doc has the format).
DOWNLOAD_PREFIX = "tingxie-download "


@dataclass(frozen=True)
class DownloadEvent:
    event: str  # "progress", "done" or "error"
    done: int = 0
    total: int = 0
    path: str = ""
    kind: str = ""  # of an error: network, auth, not_found, disk, failed
    message: str = ""


def parse_download_line(line: str) -> DownloadEvent | None:
    """One event line of the download tool, or None for any other line."""
    if not line.startswith(DOWNLOAD_PREFIX):
        return None
    try:
        data = json.loads(line[len(DOWNLOAD_PREFIX) :])
        return DownloadEvent(
            event=str(data["event"]),
            done=int(data.get("done", 0)),
            total=int(data.get("total", 0)),
            path=str(data.get("path", "")),
            kind=str(data.get("kind", "")),
            message=str(data.get("message", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


def download_text(event: DownloadEvent) -> str:
    if event.total <= 0:
        return "Downloading the model…"
    return f"Downloading the model: {event.done / 1e9:.2f} of {event.total / 1e9:.2f} GB"


def download_fraction(event: DownloadEvent) -> float | None:
    return min(1.0, event.done / event.total) if event.total > 0 else None


class PipProgress:
    """pip prints no total, so progress is what it is doing, not a made-up fraction."""

    def __init__(self) -> None:
        self.collected = 0

    def feed(self, line: str) -> str | None:
        """A status text for this line, or None when it does not change the status."""
        text = line.strip()
        if match := re.match(r"Collecting (\S+)", text):
            self.collected += 1
            return f"Finding packages: {match.group(1)} ({self.collected} so far)"
        if match := re.match(
            r"Downloading (\S+?)(?:-\d[^\s]*)?(?:\.whl|\.tar\.gz)?\s*\((.+)\)", text
        ):
            return f"Downloading {match.group(1)} ({match.group(2)})"
        if text.startswith("Installing collected packages:"):
            count = len(text.split(":", 1)[1].split(","))
            return f"Installing {count} packages…"
        if text.startswith("Successfully installed"):
            return "Installed."
        if text.startswith("Requirement already satisfied"):
            return "Checking installed packages…"
        return None


_NETWORK = re.compile(
    r"Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|ReadTimeoutError|"
    r"ConnectTimeoutError|ProxyError|SSLError|Connection refused|Could not fetch URL"
)
_NO_SPACE = re.compile(r"No space left on device|\[Errno 28\]")


def pip_failure(output: str, requirement: str) -> Problem:
    """Why pip failed, from its output."""
    if _NO_SPACE.search(output):
        return problems.disk_full("installing the server", output)
    if re.search(r"No matching distribution found for tingxie|versions: none\)", output):
        if _NETWORK.search(output):
            return problems.network_failed("Installing the server", output)
        return problems.package_not_found(requirement, output)
    if _NETWORK.search(output):
        return problems.network_failed("Installing the server", output)
    errors = "\n".join(line for line in output.splitlines() if line.startswith("ERROR"))
    return problems.install_failed(errors or output[-2000:])


def venv_failure(output: str, where: str) -> Problem:
    if "ensurepip is not available" in output or "python3-venv" in output:
        return problems.venv_unavailable(where, output)
    if re.search(r"execvpe .* failed 2|No such file or directory|command not found", output):
        return problems.python_missing(where)
    if _NO_SPACE.search(output):
        return problems.disk_full(f"creating the Python environment in {where}", output)
    return problems.install_failed(output)


def server_failure(log_text: str, port: int) -> Problem:
    """Why a server that was starting went away, from its log."""
    if re.search(
        r"CUDA out of memory|OutOfMemoryError|Free memory on device|"
        r"To serve at least one request|No available memory for the cache blocks|"
        r"less than desired GPU memory utilization",
        log_text,
    ):
        return problems.server_out_of_memory(log_text[-3000:])
    if re.search(
        r"cannot listen on .*(in use|Errno 98|Errno 10048)|address already in use", log_text, re.I
    ):
        return problems.server_port_taken(port, log_text[-2000:])
    tail = [line for line in log_text.splitlines() if line.strip() and not line.startswith("$ ")]
    reason = next(
        (line for line in reversed(tail) if re.search(r"error|Error|failed", line)),
        tail[-1] if tail else "",
    )
    return problems.server_exited(reason + ("\n" + log_text[-3000:] if log_text else ""))
