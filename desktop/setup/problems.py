"""Every way the setup can fail, in plain words, each with what to do next.

The texts live here, in one place, so docs/setup.md can list the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.endpoint import DEFAULT_SERVER_URL

GIB = 1024**3


@dataclass(frozen=True)
class Problem:
    code: str
    message: str  # what is wrong
    next_step: str  # what the user can do about it
    detail: str = ""  # the tool's own words, for the log view

    def __str__(self) -> str:
        return f"{self.message} {self.next_step}"


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.1f} GiB"


def first_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[:n])


# ---------------------------------------------------------------- WSL


def wsl_not_installed(detail: str = "") -> Problem:
    return Problem(
        "wsl_not_installed",
        "WSL (Windows Subsystem for Linux) is not installed, so the GPU server cannot run.",
        "To use an NVIDIA GPU: open PowerShell as administrator, run `wsl --install`, "
        "restart Windows, open Ubuntu once to create your user, then run this setup again. "
        "Or choose the CPU server or a remote server now.",
        detail,
    )


def wsl_needs_windows() -> Problem:
    return Problem(
        "wsl_needs_windows",
        "The GPU server setup is for Windows with WSL 2.",
        "On Linux, install `tingxie[server,vllm]` and start `tingxie-server` yourself "
        "(docs/setup.md), then choose “A server on another computer” with "
        f"{DEFAULT_SERVER_URL}.",
    )


def wsl_no_distribution(detail: str = "") -> Problem:
    return Problem(
        "wsl_no_distribution",
        "WSL is installed but has no Linux distribution.",
        "Run `wsl --install -d Ubuntu-24.04` in PowerShell, open Ubuntu once to create your "
        "user, then run this setup again.",
        detail,
    )


def wsl_version_1(name: str) -> Problem:
    return Problem(
        "wsl_version_1",
        f"The Linux distribution {name} runs on WSL 1, which cannot use the GPU.",
        f"Convert it in PowerShell with `wsl --set-version {name} 2` (takes a few minutes), "
        "then run this setup again.",
    )


def wsl_broken(detail: str) -> Problem:
    return Problem(
        "wsl_broken",
        f"wsl.exe did not answer as expected: {first_lines(detail) or 'no output'}.",
        "Run `wsl --status` in PowerShell to see what is wrong; `wsl --update` and a restart "
        "of Windows often help. Then run this setup again.",
        detail,
    )


def wsl_command_failed(what: str, name: str, detail: str) -> Problem:
    return Problem(
        "wsl_command_failed",
        f"Could not {what} in {name}: {first_lines(detail) or 'no output'}.",
        f"Open {name} from the Start menu to check that it starts and that your user exists, "
        "then press Retry.",
        detail,
    )


# ---------------------------------------------------------------- GPU


def no_gpu_in_wsl(windows_sees_gpu: bool, detail: str = "") -> Problem:
    where = (
        "Windows has an NVIDIA GPU, but WSL does not see it."
        if windows_sees_gpu
        else "WSL sees no NVIDIA GPU."
    )
    return Problem(
        "no_gpu_in_wsl",
        where,
        "Install the current NVIDIA driver for Windows (it brings GPU support to WSL; do not "
        "install an NVIDIA driver inside Linux), run `wsl --shutdown` in PowerShell, then run "
        "this setup again. Without a GPU, choose the CPU server or a remote server.",
        detail,
    )


def no_nvidia_gpu() -> Problem:
    return Problem(
        "no_nvidia_gpu",
        "This PC has no NVIDIA GPU that tingxie can use (the GPU server needs CUDA).",
        "Choose the CPU server (slower) or a remote server that has a GPU.",
    )


def gpu_driver_failed(detail: str) -> Problem:
    return Problem(
        "gpu_driver_failed",
        "The NVIDIA driver does not answer inside WSL.",
        "Update the NVIDIA driver for Windows and run `wsl --shutdown` in PowerShell, then "
        "run this setup again. If an NVIDIA driver package was installed inside Linux, remove "
        "it: WSL uses the Windows driver.",
        detail,
    )


def gpu_blocked(detail: str) -> Problem:
    return Problem(
        "gpu_blocked",
        "Windows blocks GPU access from WSL.",
        "Update Windows, WSL (`wsl --update`) and the NVIDIA driver, run `wsl --shutdown`, "
        "then run this setup again. On Windows Server, GPU access from WSL needs a "
        "configuration NVIDIA supports.",
        detail,
    )


def not_enough_vram(gpu_name: str, free_mib: int, needed_mib: int) -> Problem:
    return Problem(
        "not_enough_vram",
        f"The GPU {gpu_name} has {free_mib / 1024:.1f} GiB of free memory; the smallest "
        f"model needs about {needed_mib / 1024:.0f} GiB.",
        "Close programs that use the GPU (games, video editors, browsers with many tabs, other "
        "AI tools) and run this setup again, or choose the CPU server.",
    )


# ---------------------------------------------------------------- Python, disk, port


def python_missing(where: str) -> Problem:
    if where == "this PC":
        return Problem(
            "python_missing",
            "No Python was found on this PC.",
            "Install Python 3.12 from python.org (tick “Add python.exe to PATH”), then run "
            "this setup again, or choose a remote server.",
        )
    return Problem(
        "python_missing",
        f"Python 3 is not installed in {where}.",
        f"Open {where} and run `sudo apt update && sudo apt install python3 python3-venv`, "
        "then press Retry.",
    )


def python_from_store(executable: str) -> Problem:
    return Problem(
        "python_from_store",
        "The only Python on this PC is the Microsoft Store's, which tingxie cannot use: "
        "Windows redirects its files under %LOCALAPPDATA% into the Store package, so the "
        "server it installs would not be found.",
        "Install Python 3.12 from python.org (the “Windows installer (64-bit)”, tick “Add "
        "python.exe to PATH”), then run this setup again; or choose a remote server.",
        executable,
    )


def python_unsupported(where: str, version: tuple[int, int]) -> Problem:
    return Problem(
        "python_unsupported",
        f"{where} has Python {version[0]}.{version[1]}; the tingxie server needs Python 3.10 "
        "to 3.13.",
        f"Install a supported Python in {where} (for example `sudo apt install python3.12 "
        "python3.12-venv`), then run this setup again.",
    )


def venv_unavailable(where: str, detail: str) -> Problem:
    return Problem(
        "venv_unavailable",
        f"Python in {where} cannot create a virtual environment (the python3-venv package is "
        "missing).",
        f"Open {where} and run `sudo apt install python3-venv` (on Ubuntu 24.04: "
        "`sudo apt install python3.12-venv`), then press Retry.",
        detail,
    )


def not_enough_disk(where: str, free: int, needed: int, what: str) -> Problem:
    return Problem(
        "not_enough_disk",
        f"Not enough disk space in {where}: {gib(free)} free, about {gib(needed)} needed ({what}).",
        "Free some space (WSL keeps its files on the Windows drive, usually C:), then press Retry.",
    )


def disk_full(what: str, detail: str = "") -> Problem:
    return Problem(
        "not_enough_disk",
        f"The disk filled up while {what}.",
        "Free some space (WSL keeps its files on the Windows drive, usually C:), then press Retry.",
        detail,
    )


def internal_error(step: str, error: str) -> Problem:
    return Problem(
        "internal_error",
        f"The step “{step}” failed unexpectedly: {error}",
        "Press Retry; if it fails again, the tingxie log file has the details (docs/setup.md).",
    )


def port_in_use(port: int, alternative: int | None) -> Problem:
    then = (
        f"tingxie will use port {alternative} instead."
        if alternative
        else "Close the program that uses it, or choose another port, then press Retry."
    )
    return Problem("port_in_use", f"Port {port} is used by another program.", then)


# ---------------------------------------------------------------- install and download


def package_not_found(requirement: str, detail: str) -> Problem:
    return Problem(
        "package_not_found",
        f"pip cannot find {requirement} on the package index.",
        "tingxie is not on the package index: choose the tingxie wheel file "
        "(tingxie-…-py3-none-any.whl; the app folder has one under _internal\\wheels) under "
        "“Package” and press Retry.",
        detail,
    )


def network_failed(what: str, detail: str) -> Problem:
    return Problem(
        "network_failed",
        f"{what} failed: the internet could not be reached.",
        "Check the connection (and a proxy, if you use one: inside WSL set HTTPS_PROXY in "
        "~/.profile), then press Retry. Finished parts are kept.",
        detail,
    )


def install_failed(detail: str) -> Problem:
    return Problem(
        "install_failed",
        f"Installing the server failed: {first_lines(detail, 2) or 'pip gave no reason'}.",
        "Open the log below for pip's full message, fix what it names, then press Retry.",
        detail,
    )


def download_failed(kind: str, model: str, detail: str) -> Problem:
    if kind == "network":
        return network_failed(f"Downloading {model}", detail)
    if kind == "auth":
        return Problem(
            "download_refused",
            f"The model hub refused access to {model}.",
            "If the model needs a login, run `huggingface-cli login` where the server runs, "
            "then press Retry.",
            detail,
        )
    if kind == "not_found":
        return Problem(
            "download_not_found",
            f"The model hub has no model named {model}.",
            "Check the model name (or the mirror in HF_ENDPOINT), then press Retry.",
            detail,
        )
    if kind == "disk":
        return Problem(
            "not_enough_disk",
            f"Not enough disk space to download {model}.",
            "Free some space (WSL keeps its files on the Windows drive, usually C:), then "
            "press Retry. The finished part of the download is kept.",
            detail,
        )
    return Problem(
        "download_failed",
        f"Downloading {model} failed: {first_lines(detail, 1) or 'no reason given'}.",
        "Press Retry; the finished part of the download is kept.",
        detail,
    )


# ---------------------------------------------------------------- starting the server


def server_out_of_memory(detail: str) -> Problem:
    return Problem(
        "server_out_of_memory",
        "The GPU ran out of memory while the server loaded the model.",
        "Close programs that use the GPU and press Retry, or run the setup again and choose "
        "the smaller model.",
        detail,
    )


def server_port_taken(port: int, detail: str) -> Problem:
    return Problem(
        "port_in_use",
        f"The server could not listen on port {port}: another program uses it.",
        "Close that program, or run this setup again (it picks a free port), then Retry.",
        detail,
    )


def server_exited(detail: str) -> Problem:
    return Problem(
        "server_exited",
        f"The server stopped while starting: {first_lines(detail, 2) or 'no message'}.",
        "Open the log below for the full message, fix what it names, then press Retry.",
        detail,
    )


def server_unreachable(port: int) -> Problem:
    return Problem(
        "server_unreachable",
        f"The server runs, but this PC cannot reach it on port {port}.",
        "WSL's localhost forwarding may be off: remove `localhostForwarding=false` from "
        "%UserProfile%\\.wslconfig (or a firewall rule that blocks the port), run "
        "`wsl --shutdown`, then press Retry.",
    )


def server_start_timeout(minutes: float) -> Problem:
    return Problem(
        "server_slow",
        f"The server did not become ready within {minutes:.0f} minutes.",
        "Press Retry to keep waiting; the log below shows what it is doing.",
    )


# ---------------------------------------------------------------- remote server


def remote_refused_token(url: str) -> Problem:
    return Problem(
        "remote_refused_token",
        f"The server at {url} refused the token.",
        "Copy the token again from the server's settings (its --token or TINGXIE_TOKEN) and "
        "press Retry.",
    )


def remote_needs_token(url: str) -> Problem:
    return Problem(
        "remote_needs_token",
        f"The server at {url} needs a token, and none was given.",
        "Copy the token from the server's settings (its --token or TINGXIE_TOKEN) into "
        "“Token” and press Retry.",
    )


def remote_unreachable(url: str, detail: str) -> Problem:
    return Problem(
        "remote_unreachable",
        f"Cannot reach a tingxie server at {url}.",
        "Check the address and port, that the server runs, and that no firewall blocks it; "
        "then press Retry.",
        detail,
    )


def remote_incompatible(url: str, detail: str) -> Problem:
    return Problem(
        "remote_incompatible",
        f"The server at {url} speaks another version of the tingxie protocol.",
        "Update the server or this app so both have the same version, then press Retry.",
        detail,
    )


def bad_remote_url(url: str) -> Problem:
    return Problem(
        "bad_remote_url",
        f"“{url}” is not a server address.",
        "Write it as ws://host:port (or wss://host:port for a TLS server).",
    )
