"""The command lines of the setup steps, for a WSL distribution or for this PC (pure).

Everything that runs in WSL goes through ``wsl.exe -d DISTRO --exec PROGRAM ARGS``:
argv, no shell (``launcher.build_wsl_exec``). Paths are absolute and built here from
the home folder the probe found, never typed by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath, PureWindowsPath

from desktop.launcher import build_wsl_exec, join_command_line
from desktop.setup.decide import MAX_MODEL_LEN, ModelChoice

CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
GPU_EXTRAS = ("server", "vllm")
CPU_EXTRAS = ("server", "transformers")
NVIDIA_SMI_QUERY = [
    "--query-gpu=name,memory.total,memory.free,driver_version",
    "--format=csv,noheader,nounits",
]
WSL_NVIDIA_SMI = "/usr/lib/wsl/lib/nvidia-smi"  # the Windows driver's tool, mounted by WSL
#: Arguments that make a Python print where it is (the Microsoft Store's is refused).
PYTHON_EXECUTABLE_QUERY = ["-c", "import sys; print(sys.executable)"]


def wsl_data_root(home: str) -> str:
    return str(PurePosixPath(home) / ".local" / "share" / "tingxie")


def checked_absolute(path: str, windows: bool) -> str:
    """``path`` if it is absolute without ``..``; model loaders read anything else as
    a hub model id and fail (the article's first pitfall)."""
    pure: PurePath = PureWindowsPath(path) if windows else PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"not an absolute path: {path!r}")
    return str(pure)


@dataclass(frozen=True)
class Target:
    """Where the server is installed and runs: a WSL distribution, or this PC."""

    root: str  # absolute folder for the virtual environment and the models
    python: tuple[str, ...]  # the Python that creates the virtual environment
    wsl_distro: str = ""  # "" = this PC
    windows: bool = False  # this PC runs Windows (only matters when not in WSL)
    #: Let the environment see the packages of ``python`` (an offline machine that has
    #: them already); pip then installs only what is missing.
    system_site_packages: bool = False

    @property
    def in_wsl(self) -> bool:
        return bool(self.wsl_distro)

    @property
    def windows_paths(self) -> bool:
        return self.windows and not self.in_wsl

    def _path(self, *parts: str) -> str:
        base: PurePath = (
            PureWindowsPath(self.root) if self.windows_paths else PurePosixPath(self.root)
        )
        return str(base.joinpath(*parts))

    @property
    def where(self) -> str:
        return self.wsl_distro or "this PC"

    @property
    def venv_dir(self) -> str:
        return self._path("venv")

    def venv_program(self, name: str) -> str:
        if self.windows_paths:
            return self._path("venv", "Scripts", f"{name}.exe")
        return self._path("venv", "bin", name)

    @property
    def venv_python(self) -> str:
        return self.venv_program("python")

    @property
    def server_program(self) -> str:
        return self.venv_program("tingxie-server")

    def model_dir(self, model: ModelChoice) -> str:
        return self._path("models", model.folder_name)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """Run ``argv`` there: through wsl.exe for a distribution, as is on this PC."""
        return build_wsl_exec(argv, self.wsl_distro) if self.in_wsl else list(argv)

    # ---------------------------------------------------------------- steps

    def venv_works(self) -> list[str]:
        return self.wrap([self.venv_python, "-m", "pip", "--version"])

    def create_venv(self) -> list[str]:
        # --clear: a half-made environment (say, python3-venv was missing) starts over.
        shared = ["--system-site-packages"] if self.system_site_packages else []
        return self.wrap([*self.python, "-m", "venv", "--clear", *shared, self.venv_dir])

    def pip_install(self, requirement: str, cpu_torch: bool = False) -> list[str]:
        """pip install into the environment. ``cpu_torch``: on Linux pip would take the
        CUDA build of torch (GBs the CPU server never uses); PyTorch's CPU index offers
        ``2.x+cpu``, which sorts above ``2.x`` and is chosen. Windows wheels on PyPI are
        CPU builds already."""
        extra = (
            ["--extra-index-url", CPU_TORCH_INDEX] if cpu_torch and not self.windows_paths else []
        )
        pip = [self.venv_python, "-m", "pip", "install", "--progress-bar", "off"]
        return self.wrap([*pip, *extra, requirement])

    def to_target_path(self, windows_path: str) -> list[str]:
        """``wslpath`` turns a file chosen in Windows into its path inside WSL."""
        return build_wsl_exec(["wslpath", "-a", "-u", windows_path], self.wsl_distro)

    def download(self, model: ModelChoice, endpoint: str = "") -> list[str]:
        extra = ["--endpoint", endpoint] if endpoint else []
        tool = [self.venv_python, "-m", "server.download"]
        return self.wrap([*tool, "--repo", model.repo, "--dest", self.model_dir(model), *extra])

    def server_command(self, server_argv: Sequence[str]) -> str:
        """The command line stored in the settings (read back by the launcher)."""
        return join_command_line(server_argv, windows=self.windows_paths)


def requirement(extras: Sequence[str], version: str, wheel_uri: str = "") -> str:
    """What pip installs: this app's version from the index, or a wheel file."""
    name = f"tingxie[{','.join(extras)}]"
    return f"{name} @ {wheel_uri}" if wheel_uri else f"{name}=={version}"


def wheel_uri(path: str, windows: bool) -> str:
    """A file URL for pip (spaces and non-ASCII percent-encoded)."""
    pure: PurePath = PureWindowsPath(path) if windows else PurePosixPath(path)
    return pure.as_uri()


def gpu_server_argv(
    target: Target, model_dir: str, port: int, gpu_memory_utilization: float
) -> list[str]:
    """vLLM on the GPU, with the article's cap on the context length."""
    return [
        target.server_program,
        "--model",
        checked_absolute(model_dir, target.windows_paths),
        "--backend",
        "vllm",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--gpu-memory-utilization",
        f"{gpu_memory_utilization:.2f}",
        "--port",
        str(port),
    ]


def cpu_server_argv(target: Target, model_dir: str, port: int) -> list[str]:
    return [
        target.server_program,
        "--model",
        checked_absolute(model_dir, target.windows_paths),
        "--backend",
        "transformers",
        "--port",
        str(port),
    ]


def fake_server_argv(target: Target, port: int) -> list[str]:
    """The test engine (no model): tries the whole path without downloading anything."""
    return [target.server_program, "--engine", "fake", "--port", str(port)]
