"""What this PC can do → which server paths to offer, and which one to recommend.

Pure: :class:`MachineFacts` in (gathered by ``probe``), :class:`Recommendation` out.

Model choice by GPU memory. vLLM takes a fixed share of the GPU's memory at start
(``gpu_memory_utilization`` × total) and refuses to start when less is free, so the
budget is what is free now, less a reserve for the desktop, and at most 90 % of the
card. Estimates (bf16 weights, ``max_model_len`` 4096, not measured on a GPU here):

- Qwen3-ASR-1.7B: about 4.7 GB of weights + about 1.5 GiB of activations and CUDA
  graphs + at least 1.5 GiB of KV cache (112 KiB per token for its 28-layer, 8-KV-head
  decoder, so 4096 tokens are 448 MiB) → needs a budget of 8 GiB.
- Qwen3-ASR-0.6B: about 1.9 GB of weights → needs 4 GiB.

The server asks vLLM for the model's comfortable size (10 GiB, 6 GiB), not for the
whole card: one person's dictation needs few parallel sequences, and the rest of the
GPU stays free for other programs.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from desktop.setup import problems
from desktop.setup.facts import Gpu, GpuFailure, WslDistro, WslState
from desktop.setup.problems import GIB, Problem

MIB = 1024**2
DESKTOP_RESERVE_MIB = 512  # the desktop and browsers grow into the GPU after we measure
MAX_UTILIZATION = 0.9
MAX_MODEL_LEN = 4096  # the article's third pitfall: the model's default fills the GPU
SUPPORTED_PYTHON = ((3, 10), (3, 13))


@dataclass(frozen=True)
class ModelChoice:
    repo: str
    label: str
    download_bytes: int
    min_budget_mib: int  # below this vLLM cannot hold it
    comfortable_mib: int  # what the server asks vLLM for when the card has room

    @property
    def folder_name(self) -> str:
        return self.repo.rsplit("/", 1)[-1]


MODEL_LARGE = ModelChoice("Qwen/Qwen3-ASR-1.7B", "Qwen3-ASR 1.7B", int(4.7e9), 8192, 10240)
MODEL_SMALL = ModelChoice("Qwen/Qwen3-ASR-0.6B", "Qwen3-ASR 0.6B", int(1.9e9), 4096, 6144)
CPU_MODEL = MODEL_SMALL

#: Estimated installed sizes (pip's cache included, which pip keeps until cleaned).
VENV_GPU_BYTES = 12 * GIB  # vLLM with CUDA torch and the NVIDIA libraries
VENV_CPU_BYTES = 3 * GIB  # CPU torch and transformers
DISK_MARGIN_BYTES = 2 * GIB


class PathKind(enum.Enum):
    EXISTING = "existing"  # a tingxie server already answers on this PC
    WSL_GPU = "wsl_gpu"
    LOCAL_CPU = "local_cpu"
    REMOTE = "remote"


class PortStatus(enum.Enum):
    FREE = "free"
    TINGXIE = "tingxie"  # a tingxie server answers /healthz there
    OTHER = "other"  # something else listens


@dataclass(frozen=True)
class PortFacts:
    port: int
    status: PortStatus
    alternative: int | None = None  # a free port nearby, when ``port`` is taken
    server: str = ""  # what the tingxie server there reports (model)


@dataclass(frozen=True)
class WslFacts:
    state: WslState
    detail: str = ""  # wsl.exe's words when something is wrong
    distros: tuple[WslDistro, ...] = ()
    distro: WslDistro | None = None  # the one probed further
    home: str = ""
    command_problem: Problem | None = None  # a probe inside the distribution failed
    python: tuple[int, int, int] | None = None
    free_bytes: int | None = None  # df in the distribution's home
    installed: bool = False  # the tingxie server is already in the virtual environment
    gpus: tuple[Gpu, ...] = ()
    gpu_failure: GpuFailure | None = None
    gpu_detail: str = ""


@dataclass(frozen=True)
class LocalFacts:
    """A Python on this PC (Windows without WSL, or Linux) for the CPU server."""

    python: tuple[str, ...] | None  # argv that runs it, e.g. ("py", "-3")
    version: tuple[int, int, int] | None
    data_dir: str
    free_bytes: int | None
    installed: bool = False
    store_python: str = ""  # a Microsoft Store Python that was found and refused


@dataclass(frozen=True)
class MachineFacts:
    windows: bool
    port: PortFacts
    wsl: WslFacts | None = None
    windows_gpus: tuple[Gpu, ...] | None = None  # nvidia-smi on Windows; None: not asked
    windows_free_bytes: int | None = None  # the drive that holds WSL's virtual disk
    local: LocalFacts | None = None


@dataclass(frozen=True)
class GpuPlan:
    gpu: Gpu
    model: ModelChoice
    budget_mib: int
    gpu_memory_utilization: float
    smaller_than_best: bool  # the large model would not fit


@dataclass(frozen=True)
class Option:
    kind: PathKind
    title: str
    summary: str
    available: bool
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    model: ModelChoice | None = None
    gpu_plan: GpuPlan | None = None
    where: str = ""  # the WSL distribution, or "this PC"
    port: int = 0


@dataclass(frozen=True)
class Recommendation:
    options: tuple[Option, ...]
    recommended: PathKind
    findings: tuple[str, ...] = field(default=())  # what was found, one line each

    def option(self, kind: PathKind) -> Option:
        return next(o for o in self.options if o.kind is kind)


def vram_budget_mib(gpu: Gpu) -> int:
    return int(min(gpu.free_mib - DESKTOP_RESERVE_MIB, gpu.total_mib * MAX_UTILIZATION))


def utilization_for(total_mib: int, budget_mib: int, model: ModelChoice) -> float:
    """The share of the card vLLM may take: what the model is comfortable with, within
    the budget, rounded down (vLLM refuses to start when less than that is free)."""
    wanted = min(budget_mib, model.comfortable_mib)
    return math.floor(wanted / total_mib * 100) / 100


def models_that_fit(budget_mib: int) -> list[ModelChoice]:
    return [m for m in (MODEL_LARGE, MODEL_SMALL) if budget_mib >= m.min_budget_mib]


def plan_gpu(gpu: Gpu) -> GpuPlan | Problem:
    """The model this GPU can hold, and the memory share to ask vLLM for."""
    budget = vram_budget_mib(gpu)
    fitting = models_that_fit(budget)
    if not fitting:
        return problems.not_enough_vram(gpu.name, gpu.free_mib, MODEL_SMALL.min_budget_mib)
    model = fitting[0]
    utilization = utilization_for(gpu.total_mib, budget, model)
    return GpuPlan(gpu, model, budget, utilization, model is not MODEL_LARGE)


def disk_needed(venv_bytes: int, model: ModelChoice, installed: bool) -> int:
    return (0 if installed else venv_bytes) + model.download_bytes + DISK_MARGIN_BYTES


def _python_problem(where: str, version: tuple[int, int, int] | None) -> Problem | None:
    if version is None:
        return problems.python_missing(where)
    low, high = SUPPORTED_PYTHON
    if not low <= version[:2] <= high:
        return problems.python_unsupported(where, (version[0], version[1]))
    return None


def _disk_problem(
    where: str, free: int | None, needed: int, what: str, windows_free: int | None
) -> Problem | None:
    # WSL 2's disk grows inside a file on the Windows drive: df in Linux shows the
    # virtual disk's size limit, not what is left on the drive. Take the smaller.
    known = [b for b in (free, windows_free) if b is not None]
    if known and min(known) < needed:
        return problems.not_enough_disk(where, min(known), needed, what)
    return None


def _port_for(port: PortFacts) -> tuple[int, tuple[str, ...], tuple[Problem, ...]]:
    if port.status is PortStatus.OTHER:
        problem = problems.port_in_use(port.port, port.alternative)
        if port.alternative:
            return port.alternative, (str(problem),), ()
        return port.port, (), (problem,)
    return port.port, (), ()


def _wsl_gpu_option(facts: MachineFacts) -> Option:
    title = "GPU server in WSL (NVIDIA GPU, fast)"
    wsl = facts.wsl
    found: list[Problem] = []
    if wsl is None:
        found.append(problems.wsl_needs_windows())
        return Option(PathKind.WSL_GPU, title, "Needs Windows with WSL 2.", False, tuple(found))
    if wsl.state is WslState.NOT_INSTALLED:
        found.append(problems.wsl_not_installed(wsl.detail))
    elif wsl.state is WslState.NO_DISTRIBUTION:
        found.append(problems.wsl_no_distribution(wsl.detail))
    elif wsl.state is WslState.BROKEN:
        found.append(problems.wsl_broken(wsl.detail))
    distro = wsl.distro
    if wsl.state is not WslState.READY or distro is None:
        return Option(PathKind.WSL_GPU, title, "Not possible here.", False, tuple(found))
    if distro.version != 2:
        found.append(problems.wsl_version_1(distro.name))
    if wsl.command_problem is not None:
        found.append(wsl.command_problem)
    elif (py := _python_problem(distro.name, wsl.python)) is not None:
        found.append(py)
    plan: GpuPlan | None = None
    if wsl.gpus:
        planned = plan_gpu(wsl.gpus[0])
        if isinstance(planned, Problem):
            found.append(planned)
        else:
            plan = planned
    elif wsl.gpu_failure is GpuFailure.DRIVER:
        found.append(problems.gpu_driver_failed(wsl.gpu_detail))
    elif wsl.gpu_failure is GpuFailure.BLOCKED:
        found.append(problems.gpu_blocked(wsl.gpu_detail))
    elif facts.windows_gpus is not None and not facts.windows_gpus:
        found.append(problems.no_nvidia_gpu())
    else:
        found.append(problems.no_gpu_in_wsl(bool(facts.windows_gpus), wsl.gpu_detail))
    port, notes, port_problems = _port_for(facts.port)
    found.extend(port_problems)
    notes_list = list(notes)
    if plan is not None:
        needed = disk_needed(VENV_GPU_BYTES, plan.model, wsl.installed)
        what = f"{plan.model.label} and the server with vLLM"
        if (
            disk := _disk_problem(
                distro.name, wsl.free_bytes, needed, what, facts.windows_free_bytes
            )
        ) is not None:
            found.append(disk)
        if plan.smaller_than_best:
            notes_list.append(
                f"{plan.gpu.name} has {plan.gpu.free_mib / 1024:.1f} GiB free: the 1.7B model "
                f"needs about {MODEL_LARGE.min_budget_mib // 1024} GiB, so the 0.6B model "
                "is chosen (less accurate, faster)."
            )
    summary = (
        f"Runs {plan.model.label} with vLLM on {plan.gpu.name} inside {distro.name}: "
        "fast. Takes about "
        f"{(VENV_GPU_BYTES + plan.model.download_bytes) / GIB:.0f} GiB of disk (vLLM, "
        "PyTorch for CUDA, the model)."
        if plan is not None
        else f"Runs the model with vLLM on an NVIDIA GPU inside {distro.name}."
    )
    return Option(
        PathKind.WSL_GPU,
        title,
        summary,
        not found,
        tuple(found),
        tuple(notes_list),
        plan.model if plan else None,
        plan,
        distro.name,
        port,
    )


def _cpu_option(facts: MachineFacts) -> Option:
    """The CPU server: inside WSL where a distribution works (WSL 1 too), else with a
    Python on this PC."""
    title = "CPU server on this PC (slow)"
    model = CPU_MODEL
    port, notes, port_problems = _port_for(facts.port)
    found: list[Problem] = list(port_problems)
    wsl = facts.wsl
    base = (
        f"Runs {model.label} on the processor with transformers. No GPU needed, but each "
        "sentence takes seconds instead of a fraction of one."
    )
    if (
        wsl is not None
        and wsl.state is WslState.READY
        and wsl.distro is not None
        and wsl.command_problem is None
    ):
        where = wsl.distro.name
        if (py := _python_problem(where, wsl.python)) is not None:
            found.append(py)
        needed = disk_needed(VENV_CPU_BYTES, model, wsl.installed)
        if (
            disk := _disk_problem(
                where,
                wsl.free_bytes,
                needed,
                f"{model.label} and the CPU server",
                facts.windows_free_bytes,
            )
        ) is not None:
            found.append(disk)
        return Option(
            PathKind.LOCAL_CPU,
            title,
            f"{base} Runs inside {where}.",
            not found,
            tuple(found),
            notes,
            model,
            None,
            where,
            port,
        )
    local = facts.local
    where = "this PC"
    if local is not None and local.python is None and local.store_python:
        found.append(problems.python_from_store(local.store_python))
    elif local is None or local.python is None:
        found.append(problems.python_missing(where))
    elif (py := _python_problem(where, local.version)) is not None:
        found.append(py)
    elif (
        disk := _disk_problem(
            where,
            local.free_bytes,
            disk_needed(VENV_CPU_BYTES, model, local.installed),
            f"{model.label} and the CPU server",
            None,
        )
    ) is not None:
        found.append(disk)
    return Option(
        PathKind.LOCAL_CPU, title, base, not found, tuple(found), notes, model, None, where, port
    )


def _findings(facts: MachineFacts) -> tuple[str, ...]:
    lines = []
    wsl = facts.wsl
    if facts.windows:
        if wsl is None or wsl.state is WslState.NOT_INSTALLED:
            lines.append("WSL: not installed")
        elif wsl.state is WslState.NO_DISTRIBUTION:
            lines.append("WSL: installed, no Linux distribution")
        elif wsl.state is WslState.BROKEN:
            lines.append("WSL: not answering")
        elif wsl.distro is not None:
            others = len(wsl.distros) - 1
            more = f" ({others} more installed)" if others > 0 else ""
            lines.append(f"WSL: {wsl.distro.name}, WSL {wsl.distro.version}{more}")
    if wsl is not None and wsl.python is not None:
        lines.append(f"Python in WSL: {'.'.join(map(str, wsl.python))}")
    gpus = (wsl.gpus if wsl is not None else ()) or facts.windows_gpus or ()
    for gpu in gpus:
        lines.append(
            f"GPU: {gpu.name}, {gpu.free_mib / 1024:.1f} of {gpu.total_mib / 1024:.1f} GiB free"
            f", driver {gpu.driver}"
        )
    if not gpus:
        lines.append("GPU: no NVIDIA GPU found")
    free = [b for b in (wsl.free_bytes if wsl else None, facts.windows_free_bytes) if b is not None]
    if free:
        lines.append(f"Free disk: {min(free) / GIB:.0f} GiB")
    if facts.local is not None and facts.local.version is not None:
        lines.append(f"Python on this PC: {'.'.join(map(str, facts.local.version))}")
    port = facts.port
    port_line = {
        PortStatus.FREE: f"Port {port.port}: free",
        PortStatus.TINGXIE: f"Port {port.port}: a tingxie server answers ({port.server})",
        PortStatus.OTHER: f"Port {port.port}: used by another program",
    }[port.status]
    lines.append(port_line)
    return tuple(lines)


def decide(facts: MachineFacts) -> Recommendation:
    options: list[Option] = []
    if facts.port.status is PortStatus.TINGXIE:
        options.append(
            Option(
                PathKind.EXISTING,
                "Use the tingxie server already running on this PC",
                f"A server answers on port {facts.port.port} ({facts.port.server}).",
                True,
                port=facts.port.port,
            )
        )
    options.append(_wsl_gpu_option(facts))
    options.append(_cpu_option(facts))
    options.append(
        Option(
            PathKind.REMOTE,
            "A server on another computer",
            "Connect to a tingxie server on your network or a GPU box: its address and token.",
            True,
        )
    )
    recommended = next(o.kind for o in options if o.available)
    return Recommendation(tuple(options), recommended, _findings(facts))
