"""What the setup concludes on each recorded machine, from wsl.exe's own bytes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from desktop.launcher import ConsoleDecoder, decode_console_output
from desktop.setup.decide import (
    MODEL_LARGE,
    MODEL_SMALL,
    LocalFacts,
    MachineFacts,
    PathKind,
    PortFacts,
    PortStatus,
    Recommendation,
    WslFacts,
    decide,
    plan_gpu,
)
from desktop.setup.facts import (
    Gpu,
    GpuFailure,
    WslDistro,
    WslState,
    choose_distribution,
    parse_df_available,
    parse_nvidia_smi,
    parse_wsl_list_verbose,
)
from desktop.setup.probe import ProbeConfig, Prober, check_port
from desktop.setup.problems import Problem
from tests.conftest import free_port, spawn_fake_server
from tests.setup.recorded import DATA, RecordedRunner

WINDOWS = ProbeConfig(windows=True, local_pythons=(("py", "-3"),), local_data_dir="")


def probe(machine: str) -> tuple[MachineFacts, Recommendation, RecordedRunner]:
    runner = RecordedRunner(machine)
    facts = Prober(runner, replace(WINDOWS, port=free_port())).run()
    return facts, decide(facts), runner


def codes(problems: tuple[Problem, ...]) -> list[str]:
    return [p.code for p in problems]


# ---------------------------------------------------------------- wsl.exe's bytes


def test_recordings_are_utf16le_without_bom_with_crlf() -> None:
    raw = (DATA / "gpu_ubuntu" / "list.out").read_bytes()
    assert not raw.startswith(b"\xff\xfe") and raw[1] == 0  # BOM-less UTF-16LE
    assert b"\r\x00\n\x00" in raw
    assert decode_console_output(raw).splitlines()[1].startswith("* Ubuntu-24.04")


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 4096])
def test_stream_decoder_splits_utf16_and_utf8_lines_at_any_chunk_size(chunk: int) -> None:
    for name in ("gpu_ubuntu/list.out", "not_installed/status.out", "gpu_ubuntu/pip_install.out"):
        raw = (DATA / name).read_bytes()
        decoder = ConsoleDecoder()
        lines: list[str] = []
        for start in range(0, len(raw), chunk):
            lines += decoder.feed(raw[start : start + chunk])
        lines += decoder.close()
        assert lines == decode_console_output(raw).splitlines(), (name, chunk)
    # Chinese text in UTF-16LE (wsl.exe on a Chinese Windows) splits correctly as well.
    decoder = ConsoleDecoder()
    raw = "名称 状态\r\n* Ubuntu 正在运行 2\r\n".encode("utf-16-le")
    assert [*decoder.feed(raw[:5]), *decoder.feed(raw[5:]), *decoder.close()] == [
        "名称 状态",
        "* Ubuntu 正在运行 2",
    ]


def test_list_parser_needs_no_english_words() -> None:
    # Synthetic: the layout of `wsl -l -v` with a translated header and states.
    text = "  名称      状态      版本\r\n* Ubuntu    正在运行  2\r\n  Debian    已停止    1\r\n"
    assert parse_wsl_list_verbose(text) == [
        WslDistro("Ubuntu", "正在运行", 2, True),
        WslDistro("Debian", "已停止", 1, False),
    ]


def test_small_parsers() -> None:
    assert parse_nvidia_smi("NVIDIA GeForce RTX 3060, 12288 MiB, 11134 MiB, 546.33\n") == [
        Gpu("NVIDIA GeForce RTX 3060", 12288, 11134, "546.33")
    ]
    assert parse_nvidia_smi("No devices were found\n") == []
    assert parse_df_available("Filesystem 1024-blocks Used Available Capacity Mounted on\n") is None
    docker = [WslDistro("docker-desktop", "Running", 2, True), WslDistro("D", "Stopped", 1, False)]
    assert choose_distribution(docker) == docker[1]  # never Docker's own distribution


# ---------------------------------------------------------------- recorded machines


def test_wsl2_with_an_nvidia_gpu_recommends_the_gpu_server_with_the_large_model() -> None:
    facts, rec, runner = probe("gpu_ubuntu")
    assert facts.wsl is not None and facts.wsl.state is WslState.READY
    assert facts.wsl.distro == WslDistro("Ubuntu-24.04", "Running", 2, True)
    assert facts.wsl.home == "/home/lin" and facts.wsl.python == (3, 12, 3)
    assert facts.wsl.free_bytes == 983219772 * 1024 and not facts.wsl.installed
    assert rec.recommended is PathKind.WSL_GPU
    gpu = rec.option(PathKind.WSL_GPU)
    assert gpu.available and gpu.where == "Ubuntu-24.04" and gpu.model == MODEL_LARGE
    assert gpu.gpu_plan is not None and gpu.gpu_plan.gpu_memory_utilization == 0.83
    assert rec.option(PathKind.LOCAL_CPU).available  # the CPU server is offered too
    assert rec.option(PathKind.REMOTE).available
    assert "GPU: NVIDIA GeForce RTX 4070, 10.8 of 12.0 GiB free, driver 566.36" in rec.findings
    # Everything inside WSL ran as argv through --exec, never through the Linux shell.
    inside = [c for c in runner.calls if c[0] == "wsl.exe" and "-d" in c]
    assert inside and all("--exec" in c and "--" not in c for c in inside)


def test_a_localhost_proxy_warning_on_stderr_changes_nothing() -> None:
    """Every wsl.exe call of this machine starts with WSL's proxy warning in UTF-16LE on
    stderr (Chinese for one of them); decoded apart from stdout, the facts are those of
    the same machine without a proxy."""
    facts, rec, _ = probe("proxy_warning")
    plain, plain_rec, _ = probe("gpu_ubuntu")
    assert facts.wsl is not None and plain.wsl is not None
    assert facts.wsl.home == "/home/lin" and facts.wsl.python == (3, 12, 3)
    same = ("state", "distros", "distro", "home", "python", "free_bytes", "installed", "gpus")
    assert [getattr(facts.wsl, k) for k in same] == [getattr(plain.wsl, k) for k in same]
    assert facts.wsl.command_problem is None and facts.wsl.gpu_failure is None
    assert rec.recommended is PathKind.WSL_GPU
    assert rec.findings[:-1] == plain_rec.findings[:-1]  # all but the port (each its own)
    # The recording holds what broke the old decoding: both streams decoded as one.
    folder = DATA / "proxy_warning"
    merged = (folder / "proxy_warning_zh.err").read_bytes() + (folder / "pwd.out").read_bytes()
    assert "/home/lin" not in decode_console_output(merged)


def test_a_microsoft_store_python_is_refused_with_what_to_install() -> None:
    runner = RecordedRunner("not_installed")
    where = ["py", "-3", "-c", "import sys; print(sys.executable)"]
    runner.script(where, runner.recording("py_store_executable.out", 0))
    facts = Prober(runner, replace(WINDOWS, port=free_port())).run()
    assert facts.local is not None and facts.local.python is None
    assert "WindowsApps" in facts.local.store_python
    cpu = decide(facts).option(PathKind.LOCAL_CPU)
    assert not cpu.available and codes(cpu.problems) == ["python_from_store"]
    assert "python.org" in cpu.problems[0].next_step
    # A second Python that is not the Store's is taken instead.
    runner = RecordedRunner("not_installed")
    store, other = (
        runner.recording("py_store_executable.out", 0),
        runner.recording("py_executable.out", 0),
    )
    runner.script(where, store, other)
    two = replace(WINDOWS, port=free_port(), local_pythons=(("py", "-3"), ("py", "-3")))
    facts = Prober(runner, two).run()
    assert facts.local is not None and facts.local.python == ("py", "-3")


@pytest.mark.parametrize(
    ("machine", "problem", "cpu_where"),
    [
        ("no_gpu", "no_nvidia_gpu", "Ubuntu-24.04"),
        ("driver_failed", "gpu_driver_failed", "Ubuntu-24.04"),
        ("gpu_blocked", "gpu_blocked", "Ubuntu-24.04"),
        ("not_installed", "wsl_not_installed", "this PC"),
        ("no_distribution", "wsl_no_distribution", "this PC"),
        ("wsl1_only", "wsl_version_1", "Ubuntu"),
    ],
)
def test_without_a_usable_gpu_the_cpu_server_is_recommended(
    machine: str, problem: str, cpu_where: str
) -> None:
    _facts, rec, _runner = probe(machine)
    gpu = rec.option(PathKind.WSL_GPU)
    assert not gpu.available and problem in codes(gpu.problems)
    assert all(p.message and p.next_step for p in gpu.problems)
    assert rec.recommended is PathKind.LOCAL_CPU
    cpu = rec.option(PathKind.LOCAL_CPU)
    assert cpu.where == cpu_where and cpu.model == MODEL_SMALL
    assert "slow" in cpu.title.lower()


def test_wsl_sees_no_gpu_but_windows_does() -> None:
    facts, rec, _ = probe("driver_failed")
    assert facts.windows_gpus and facts.wsl is not None
    assert facts.wsl.gpu_failure is GpuFailure.DRIVER
    text = str(rec.option(PathKind.WSL_GPU).problems[0])
    assert "wsl --shutdown" in text and "inside Linux" in text


def test_wsl1_is_not_asked_for_a_gpu() -> None:
    _facts, _rec, runner = probe("wsl1_only")
    assert not [c for c in runner.calls if "/usr/lib/wsl/lib/nvidia-smi" in c]


def test_no_wsl_no_python_leaves_the_remote_server() -> None:
    facts, rec, _ = probe("no_wsl_exe")
    assert facts.wsl is not None and facts.wsl.state is WslState.NOT_INSTALLED
    assert "python_missing" in codes(rec.option(PathKind.LOCAL_CPU).problems)
    assert rec.recommended is PathKind.REMOTE


def test_several_distributions_pick_the_default_wsl2_one_and_a_smaller_model() -> None:
    facts, rec, runner = probe("several_distros")
    assert facts.wsl is not None and facts.wsl.distro is not None
    assert [d.name for d in facts.wsl.distros] == [
        "Ubuntu",
        "Legacy",
        "Ubuntu-18.04",
        "docker-desktop",
    ]
    assert facts.wsl.distro.name == "Ubuntu" and facts.wsl.distro.default
    gpu = rec.option(PathKind.WSL_GPU)
    assert gpu.available and gpu.model == MODEL_SMALL
    assert gpu.gpu_plan is not None and gpu.gpu_plan.gpu_memory_utilization == 0.5
    assert any("0.6B model is chosen" in note for note in gpu.notes)
    assert all("Ubuntu-18.04" not in c for c in runner.calls)


# ---------------------------------------------------------------- decisions


def wsl_facts(**changes: object) -> MachineFacts:
    distro = WslDistro("Ubuntu", "Running", 2, True)
    wsl = WslFacts(
        WslState.READY,
        distros=(distro,),
        distro=distro,
        home="/home/u",
        python=(3, 12, 3),
        free_bytes=500 * 1024**3,
        gpus=(Gpu("GPU", 16384, 16000, "1"),),
    )
    return MachineFacts(True, PortFacts(8765, PortStatus.FREE), replace(wsl, **changes), ())


def test_vram_thresholds() -> None:
    # budget = min(free - 512 MiB, 90 % of total); 1.7B from 8 GiB, 0.6B from 4 GiB
    big = plan_gpu(Gpu("a", 24576, 8192 + 512, "1"))
    assert not isinstance(big, Problem) and big.model == MODEL_LARGE
    assert big.gpu_memory_utilization == 0.33  # 8 GiB of 24 GiB, rounded down
    almost = plan_gpu(Gpu("b", 24576, 8192 + 511, "1"))
    assert not isinstance(almost, Problem) and almost.model == MODEL_SMALL
    capped = plan_gpu(Gpu("c", 8192, 8192, "1"))  # 90 % of 8 GiB is below 8 GiB
    assert not isinstance(capped, Problem) and capped.model == MODEL_SMALL
    none = plan_gpu(Gpu("GT 1030", 4096, 3900, "1"))
    assert isinstance(none, Problem) and none.code == "not_enough_vram"
    assert "3.8 GiB" in none.message and "Close programs" in none.next_step


def test_disk_counts_the_windows_drive_too() -> None:
    ok = decide(wsl_facts())
    assert ok.option(PathKind.WSL_GPU).available
    # Linux's df shows WSL's 1 TB virtual disk; the Windows drive behind it is full.
    full = replace(wsl_facts(), windows_free_bytes=5 * 1024**3)
    gpu = decide(full).option(PathKind.WSL_GPU)
    assert not gpu.available and "not_enough_disk" in codes(gpu.problems)
    assert "5.0 GiB free" in gpu.problems[-1].message
    # Already installed: only the model must fit.
    assert (
        decide(replace(full, windows_free_bytes=8 * 1024**3)).option(PathKind.WSL_GPU).available
        is False
    )
    installed = replace(wsl_facts(installed=True), windows_free_bytes=8 * 1024**3)
    assert decide(installed).option(PathKind.WSL_GPU).available


def test_python_versions() -> None:
    for version, ok in (((3, 9, 18), False), ((3, 10, 12), True), ((3, 13, 1), True)):
        gpu = decide(wsl_facts(python=version)).option(PathKind.WSL_GPU)
        assert gpu.available is ok, version
    gpu = decide(wsl_facts(python=(3, 14, 0))).option(PathKind.WSL_GPU)
    assert codes(gpu.problems) == ["python_unsupported"]
    gpu = decide(wsl_facts(python=None)).option(PathKind.WSL_GPU)
    assert "sudo apt install python3" in gpu.problems[0].next_step


def test_on_linux_the_local_cpu_server_and_remote_are_offered() -> None:
    local = LocalFacts(("python3",), (3, 11, 7), "/home/u/.local/share/tingxie", 50 * 1024**3)
    rec = decide(MachineFacts(False, PortFacts(8765, PortStatus.FREE), local=local))
    assert codes(rec.option(PathKind.WSL_GPU).problems) == ["wsl_needs_windows"]
    assert rec.recommended is PathKind.LOCAL_CPU


# ---------------------------------------------------------------- the port, for real


@pytest.fixture
def squatter() -> Iterator[int]:
    """Something that is not tingxie listening on a port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_port_taken_by_another_program_moves_to_a_free_one(squatter: int) -> None:
    port = check_port(squatter)
    assert port.status is PortStatus.OTHER and port.alternative is not None
    assert port.alternative != squatter and not port.server
    rec = decide(replace(wsl_facts(), port=port))
    gpu = rec.option(PathKind.WSL_GPU)
    assert gpu.available and gpu.port == port.alternative
    assert any(f"Port {squatter} is used by another program" in n for n in gpu.notes)


def test_a_running_tingxie_server_is_offered_first(subprocess_env: dict[str, str]) -> None:
    proc, port = spawn_fake_server(env=subprocess_env)
    try:
        facts = check_port(port)
    finally:
        proc.terminate()
        proc.wait(10)
    assert facts.status is PortStatus.TINGXIE and facts.server
    rec = decide(replace(wsl_facts(), port=facts))
    assert rec.recommended is PathKind.EXISTING
    assert check_port(free_port()).status is PortStatus.FREE
