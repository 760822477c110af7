"""Read what the probe commands printed: wsl.exe, nvidia-smi, df, python.

Pure functions over decoded text (see ``launcher.decode_console_output``: wsl.exe's own
messages are UTF-16LE, Linux programs run through it print UTF-8). Windows prints
wsl.exe's texts in the user's language, so nothing here depends on English words where
the layout alone tells the answer; where only words can tell (which failure), unknown
text falls back to a general "wsl.exe did not answer as expected".
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

MIB = 1024**2


@dataclass(frozen=True)
class WslDistro:
    name: str
    state: str  # "Running", "Stopped", … (in the user's language)
    version: int  # 1 or 2
    default: bool


def parse_wsl_list_verbose(text: str) -> list[WslDistro]:
    """Rows of ``wsl.exe --list --verbose``; the header and messages are skipped.

    A row is ``[*] NAME STATE… VERSION``; the last column is the WSL version, a ``*``
    marks the default. Names cannot contain spaces; states may (in some languages).
    """
    distros = []
    for raw in text.splitlines():
        line = raw.strip().strip("\x00")
        default = line.startswith("*")
        words = line.lstrip("*").split()
        if len(words) < 3 or words[-1] not in {"1", "2"}:
            continue
        distros.append(WslDistro(words[0], " ".join(words[1:-1]), int(words[-1]), default))
    return distros


class WslState(enum.Enum):
    READY = "ready"  # at least one distribution
    NOT_INSTALLED = "not_installed"
    NO_DISTRIBUTION = "no_distribution"
    BROKEN = "broken"


_NOT_INSTALLED = re.compile(r"not installed|wslinstall|未安装|REGDB_E_CLASSNOTREG", re.I)
_NO_DISTRIBUTION = re.compile(r"no installed distributions|DEFAULT_DISTRO_NOT_FOUND|wslstore")


def wsl_state(
    status_code: int, status_text: str, status_launch_error: str, list_code: int, list_text: str
) -> WslState:
    """What ``wsl.exe --status`` and ``wsl.exe --list --verbose`` say together."""
    if status_launch_error:  # no wsl.exe at all (Windows 10 before WSL was enabled)
        return WslState.NOT_INSTALLED
    if parse_wsl_list_verbose(list_text):
        return WslState.READY
    both = f"{status_text}\n{list_text}"
    if _NO_DISTRIBUTION.search(both):
        return WslState.NO_DISTRIBUTION
    if status_code != 0 and _NOT_INSTALLED.search(status_text):
        return WslState.NOT_INSTALLED
    if list_code == 0 and status_code == 0:
        return WslState.NO_DISTRIBUTION  # an empty list, only the header
    return WslState.BROKEN


_DOCKER_DISTROS = ("docker-desktop", "docker-desktop-data", "rancher-desktop")


def choose_distribution(distros: list[WslDistro]) -> WslDistro | None:
    """The distribution to set up: the default one if it runs on WSL 2, else the first
    WSL 2 one, else the default (then the decision explains WSL 1). Docker's and
    Rancher's internal distributions have no user and no Python: never them."""
    usable = [d for d in distros if d.name not in _DOCKER_DISTROS]
    for wanted in (
        lambda d: d.default and d.version == 2,
        lambda d: d.version == 2,
        lambda d: d.default,
        lambda d: True,
    ):
        for distro in usable:
            if wanted(distro):
                return distro
    return None


@dataclass(frozen=True)
class Gpu:
    name: str
    total_mib: int
    free_mib: int
    driver: str


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """``nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version
    --format=csv,noheader[,nounits]``: one GPU per line, MiB with or without unit."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        name, total, free, driver = parts
        try:
            total_mib = int(float(total.removesuffix("MiB").strip()))
            free_mib = int(float(free.removesuffix("MiB").strip()))
        except ValueError:
            continue
        gpus.append(Gpu(name, total_mib, free_mib, driver))
    return gpus


class GpuFailure(enum.Enum):
    NOT_FOUND = "not_found"  # no nvidia-smi: no NVIDIA driver reaches this system
    DRIVER = "driver"  # nvidia-smi runs but cannot talk to the driver
    BLOCKED = "blocked"  # Windows refuses GPU access from WSL
    OTHER = "other"


def classify_gpu_failure(text: str, launch_error: str = "") -> GpuFailure:
    if launch_error or re.search(r"execvpe .* failed|not found|No such file", text):
        return GpuFailure.NOT_FOUND
    if "blocked by the operating system" in text:
        return GpuFailure.BLOCKED
    if re.search(r"couldn't communicate with the NVIDIA driver|Driver Not Loaded", text):
        return GpuFailure.DRIVER
    return GpuFailure.OTHER


def parse_df_available(text: str) -> int | None:
    """Free bytes from ``df -Pk PATH`` (POSIX format: the 4th column, in KiB)."""
    for line in text.splitlines()[1:]:
        words = line.split()
        if len(words) >= 6 and words[3].isdigit():
            return int(words[3]) * 1024
    return None


def parse_python_version(text: str) -> tuple[int, int, int] | None:
    """``Python 3.12.3`` → (3, 12, 3); anything else (an error) → None."""
    match = re.search(r"^Python (\d+)\.(\d+)\.(\d+)", text.strip(), re.M)
    if match is None:
        return None
    major, minor, micro = (int(g) for g in match.groups())
    return major, minor, micro


def program_missing(text: str, launch_error: str = "") -> bool:
    """True when the program itself was not found (in WSL: init's ``execvpe`` error)."""
    return bool(launch_error) or bool(
        re.search(r"execvpe .* failed 2|command not found|No such file or directory", text)
    )


def first_line_of_home(text: str) -> str:
    """The home folder from ``--cd ~ --exec pwd``: one absolute path, or ''."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("/"):
            return line
    return ""


def is_store_python(executable: str) -> bool:
    """The Microsoft Store's Python (an app package under ``WindowsApps``): its writes under
    %LOCALAPPDATA% are redirected into the package, so a server installed there is not
    where the app looks for it."""
    return "\\windowsapps\\" in executable.lower().replace("/", "\\")


def first_path(text: str) -> str:
    """The first non-empty line (``sys.executable`` as printed)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
