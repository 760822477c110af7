"""Find out what this PC can do: the probe commands, run through the process runner.

Thin: each probe is one command (see ``commands``) whose output ``facts`` reads. On
Linux the tests replay recorded ``wsl.exe`` outputs through a fake runner.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from desktop.launcher import WSL_EXE, Captured, ProcessRunner, build_wsl_exec, probe_health
from desktop.setup import facts, problems
from desktop.setup.commands import (
    NVIDIA_SMI_QUERY,
    PYTHON_EXECUTABLE_QUERY,
    WSL_NVIDIA_SMI,
    Target,
    wsl_data_root,
)
from desktop.setup.decide import LocalFacts, MachineFacts, PortFacts, PortStatus, WslFacts
from protocol.endpoint import DEFAULT_PORT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeConfig:
    windows: bool
    port: int = DEFAULT_PORT
    #: Pythons to try for a CPU server on this PC, in order.
    local_pythons: tuple[tuple[str, ...], ...] = (("python3",),)
    local_data_dir: str = ""
    #: A folder on the drive that holds WSL's virtual disk (``%LOCALAPPDATA%``).
    windows_drive: str = ""
    timeout_s: float = 90.0  # the first wsl.exe call may boot the WSL virtual machine


def probe_config_for_this_pc(server_url: str) -> ProbeConfig:
    """Where to look on this PC: the port of the configured URL when it is local."""
    import platformdirs

    windows = sys.platform == "win32"
    parts = urlsplit(server_url)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    return ProbeConfig(
        windows=windows,
        port=(parts.port or DEFAULT_PORT) if local else DEFAULT_PORT,
        local_pythons=(("py", "-3"), ("python",)) if windows else (("python3",),),
        local_data_dir=platformdirs.user_data_dir("tingxie", appauthor=False),
        windows_drive=os.environ.get("LOCALAPPDATA", "") if windows else "",
    )


def free_bytes(path: str) -> int | None:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def check_port(port: int, host: str = "127.0.0.1") -> PortFacts:
    """Is a tingxie server there, something else, or nothing? (and a free one nearby)"""
    body = probe_health(f"http://{host}:{port}/healthz", timeout=1.5)
    if body is not None and "model_state" in body:
        return PortFacts(port, PortStatus.TINGXIE, server=str(body.get("model", "")))
    if not _listening(host, port):
        return PortFacts(port, PortStatus.FREE)
    alternative = next((p for p in range(port + 1, port + 30) if not _listening(host, p)), None)
    return PortFacts(port, PortStatus.OTHER, alternative)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Prober:
    def __init__(self, runner: ProcessRunner, config: ProbeConfig) -> None:
        self._runner = runner
        self._config = config

    def _capture(self, argv: list[str]) -> Captured:
        done = self._runner.capture(argv, self._config.timeout_s)
        log.info("probe %s → %s %r", argv, done.returncode, done.text[:300])
        return done

    def run(self, report: Callable[[str], None] = lambda text: None) -> MachineFacts:
        c = self._config
        report(f"Checking port {c.port}…")
        port = check_port(c.port)
        wsl: WslFacts | None = None
        windows_gpus: tuple[facts.Gpu, ...] | None = None
        if c.windows:
            report("Checking WSL…")
            wsl = self.wsl_facts(report)
            report("Checking the GPU on Windows…")
            smi = self._capture(["nvidia-smi", *NVIDIA_SMI_QUERY])
            windows_gpus = (
                tuple(facts.parse_nvidia_smi(smi.out_text)) if smi.returncode == 0 else ()
            )
        report("Checking Python on this PC…")
        local = self.local_facts()
        return MachineFacts(
            windows=c.windows,
            port=port,
            wsl=wsl,
            windows_gpus=windows_gpus,
            windows_free_bytes=free_bytes(c.windows_drive) if c.windows_drive else None,
            local=local,
        )

    def wsl_facts(self, report: Callable[[str], None]) -> WslFacts:
        status = self._capture([WSL_EXE, "--status"])
        listing = self._capture([WSL_EXE, "--list", "--verbose"])
        state = facts.wsl_state(
            status.returncode,
            status.text,
            status.launch_error,
            listing.returncode,
            listing.text,
        )
        detail = "\n".join(t for t in (status.launch_error, status.text, listing.text) if t)
        distros = tuple(facts.parse_wsl_list_verbose(listing.out_text))
        distro = facts.choose_distribution(list(distros))
        if state is not facts.WslState.READY or distro is None:
            return WslFacts(state, detail.strip(), distros)
        name = distro.name
        report(f"Checking {name}…")
        where = self._capture(build_wsl_exec(["pwd"], name, cwd="~"))
        home = facts.first_line_of_home(where.out_text)
        if not home:
            problem = problems.wsl_command_failed("find your home folder", name, where.text)
            return WslFacts(state, detail, distros, distro, command_problem=problem)
        python = self._capture(build_wsl_exec(["python3", "--version"], name))
        df = self._capture(build_wsl_exec(["df", "-Pk", home], name))
        target = Target(wsl_data_root(home), ("python3",), name)
        installed = self._capture(build_wsl_exec(["test", "-x", target.server_program], name))
        gpus: tuple[facts.Gpu, ...] = ()
        failure: facts.GpuFailure | None = None
        gpu_detail = ""
        if distro.version == 2:  # WSL 1 has no GPU support at all
            report(f"Checking the GPU in {name}…")
            smi = self._capture(build_wsl_exec([WSL_NVIDIA_SMI, *NVIDIA_SMI_QUERY], name))
            gpus = tuple(facts.parse_nvidia_smi(smi.out_text)) if smi.returncode == 0 else ()
            if not gpus:
                failure = facts.classify_gpu_failure(smi.text, smi.launch_error)
                gpu_detail = smi.launch_error or smi.text
        return WslFacts(
            state=state,
            detail=detail,
            distros=distros,
            distro=distro,
            home=home,
            python=facts.parse_python_version(python.out_text),
            free_bytes=facts.parse_df_available(df.out_text),
            installed=installed.returncode == 0,
            gpus=gpus,
            gpu_failure=failure,
            gpu_detail=gpu_detail.strip(),
        )

    def local_facts(self) -> LocalFacts:
        """The first Python of ``local_pythons`` that runs (on Windows: and is not the
        Microsoft Store's, whose files are redirected)."""
        c = self._config
        store = ""
        for candidate in c.local_pythons:
            done = self._capture([*candidate, "--version"])
            version = facts.parse_python_version(done.out_text) if done.returncode == 0 else None
            if version is None:
                continue
            if c.windows:
                where = self._capture([*candidate, *PYTHON_EXECUTABLE_QUERY])
                executable = facts.first_path(where.out_text) if where.returncode == 0 else ""
                if facts.is_store_python(executable):
                    log.info("refusing the Microsoft Store Python %s", executable)
                    store = store or executable
                    continue
            target = Target(c.local_data_dir, candidate, windows=c.windows)
            return LocalFacts(
                candidate,
                version,
                c.local_data_dir,
                free_bytes(c.local_data_dir) if c.local_data_dir else None,
                installed=Path(target.server_program).exists(),
            )
        return LocalFacts(None, None, c.local_data_dir, None, store_python=store)
