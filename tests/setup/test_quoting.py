"""Settings never become shell code: hostile words stay one argument, for real.

The WSL server command is ``wsl.exe -d D --exec bash -lc 'exec …'``. On Linux the part
after ``--exec`` is exactly what WSL runs, so these tests run it through a real bash with
a program that prints its argv. The Windows layer (``subprocess.list2cmdline`` → wsl.exe
splitting its command line) is checked against the documented Microsoft C runtime rules.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop.launcher import (
    Launcher,
    build_server_command,
    join_command_line,
    login_shell_script,
    posix_quote,
    redact_argv,
    server_environment,
    split_command_line,
)

HOSTILE = [
    "; rm -rf ~",
    "$(id)",
    "`id`",
    "a b  c",
    "it's",
    'say "hi"',
    "back\\slash",
    "trailing\\",
    "/home/用户/模型 Qwen3-ASR",
    "$HOME",
    "*",
    "--token=x y",
    "",
    "two\nlines",
    "|| touch CANARY &",
    "'; touch CANARY; '",
]


def split_windows_command_line(line: str) -> list[str]:
    """argv as the Microsoft C runtime (and CommandLineToArgvW) reads a command line.

    2n backslashes + quote → n backslashes, quote toggles; 2n+1 backslashes + quote →
    n backslashes and a literal quote; other backslashes are literal.
    """
    args: list[str] = []
    current: list[str] = []
    in_quotes = have_arg = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            j = i
            while j < len(line) and line[j] == "\\":
                j += 1
            count = j - i
            if j < len(line) and line[j] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    i = j + 1
                else:
                    i = j
                have_arg = True
                continue
            current.append("\\" * count)
            have_arg = True
            i = j
            continue
        if ch == '"':
            in_quotes = not in_quotes
            have_arg = True
        elif ch in " \t" and not in_quotes:
            if have_arg:
                args.append("".join(current))
                current, have_arg = [], False
        else:
            current.append(ch)
            have_arg = True
        i += 1
    if have_arg:
        args.append("".join(current))
    return args


@pytest.fixture
def echo_program(tmp_path: Path) -> Path:
    """A program that prints its argv as JSON, in a folder whose name is itself hostile."""
    folder = tmp_path / "bin $(touch CANARY) 'q\" 中文"
    folder.mkdir()
    program = folder / "echo-argv"
    program.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "cuda = os.environ.get('CUDA_VISIBLE_DEVICES')\n"
        "print(json.dumps({'argv': sys.argv[1:], 'cuda': cuda}))\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


def run_in_wsl_position(argv: list[str], cwd: Path, home: Path) -> dict[str, object]:
    """Run what WSL would run: the words after ``--exec``."""
    inside = argv[argv.index("--exec") + 1 :]
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    # stdin stays open while it runs, as the app's pipe does (end of file stops a server)
    proc = subprocess.Popen(
        inside, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    result: dict[str, object] = json.loads(stdout)
    return result


def test_quoted_words_parse_back_to_themselves() -> None:
    for word in HOSTILE:
        assert shlex.split(posix_quote(word)) == [word], word
        assert '"' not in posix_quote(word).replace(word, ""), "quoting adds no double quote"
    script = login_shell_script(["/venv/bin/tingxie-server", "--model", *HOSTILE])
    assert shlex.split(script) == ["exec", "/venv/bin/tingxie-server", "--model", *HOSTILE]


def test_hostile_words_reach_the_server_as_one_argument_each(
    echo_program: Path, tmp_path: Path
) -> None:
    command = join_command_line([str(echo_program), *HOSTILE], windows=False)
    argv = build_server_command(Launcher.WSL, command, "Ubuntu 24.04; $(id)")
    assert argv[:4] == ["wsl.exe", "-d", "Ubuntu 24.04; $(id)", "--exec"]
    result = run_in_wsl_position(argv, cwd=tmp_path, home=tmp_path)
    assert result["argv"] == HOSTILE
    assert not list(tmp_path.rglob("CANARY")), "a setting ran as a command"


def test_home_and_variable_prefixes_keep_their_meaning(echo_program: Path, tmp_path: Path) -> None:
    home = tmp_path / "home dir"
    (home / "my models").mkdir(parents=True)
    link = home / "bin"
    link.symlink_to(echo_program.parent)
    command = "CUDA_VISIBLE_DEVICES=1 ~/bin/echo-argv --model '~/my models/$(id)' ~/x"
    result = run_in_wsl_position(
        build_server_command(Launcher.WSL, command), cwd=tmp_path, home=home
    )
    # A word that starts with "~/" is in the home folder; the rest of it stays literal.
    assert result["argv"] == ["--model", f"{home}/my models/$(id)", f"{home}/x"]
    assert result["cuda"] == "1"


def test_windows_command_line_round_trip() -> None:
    """What Python's Popen writes on Windows reads back as the same words."""
    argv = build_server_command(
        Launcher.WSL, join_command_line(["/v/bin/tingxie-server", *HOSTILE], False)
    )
    line = subprocess.list2cmdline(argv)
    assert split_windows_command_line(line) == argv
    # The app's own Windows paths (spaces, no quotes inside) survive settings and back.
    exe = [
        r"C:\Users\Zhang San\AppData\Local\tingxie\venv\Scripts\tingxie-server.exe",
        "--port",
        "8765",
    ]
    assert split_command_line(join_command_line(exe, windows=True), windows=True) == exe
    assert build_server_command(Launcher.DIRECT, join_command_line(exe, True), windows=True) == exe


def test_unreadable_or_empty_commands_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        build_server_command(Launcher.WSL, "tingxie-server --model 'unclosed")
    with pytest.raises(ValueError, match="empty"):
        build_server_command(Launcher.DIRECT, "   ")


def test_token_travels_in_the_environment_and_is_hidden_in_logs() -> None:
    stay = "TINGXIE_KEEP_SERVING_ON_LOAD_FAILURE"  # the tray app reports a failed load
    ends = "TINGXIE_STOP_ON_STDIN_EOF"  # a direct child ends with the app (not in WSL)
    assert server_environment("", Launcher.DIRECT) == {stay: "1", ends: "1"}
    assert server_environment("s3cret", Launcher.DIRECT) == {
        "TINGXIE_TOKEN": "s3cret",
        stay: "1",
        ends: "1",
    }
    env = server_environment("s3cret", Launcher.WSL, inherited_wslenv="USERPROFILE/p:TINGXIE_TOKEN")
    assert env == {
        "TINGXIE_TOKEN": "s3cret",
        stay: "1",
        "WSLENV": f"USERPROFILE/p:TINGXIE_TOKEN:{stay}",
    }
    assert server_environment("", Launcher.WSL)["WSLENV"] == stay
    shown = redact_argv(["tingxie-server", "--token", "s3cret", "--token=abc", "--port", "1"])
    assert shown == ["tingxie-server", "--token", "***", "--token=***", "--port", "1"]


def test_stopping_signals_the_server_it_started_and_no_other(tmp_path: Path) -> None:
    """The WSL start script notes the server's process id; the stop script sends SIGTERM to
    that process only. Both run here in a real bash, with a stand-in server that records
    the signal; a second tingxie server of the same user must keep running."""
    from desktop.launcher import build_wsl_stop_command

    server = tmp_path / "bin" / "tingxie-server"
    server.parent.mkdir()
    server.write_text(
        "#!/usr/bin/env bash\n"
        "trap 'echo TERM > \"$1\"; exit 0' TERM\n"
        "while true; do sleep 0.05; done\n"
    )
    server.chmod(0o755)
    env = {"HOME": str(tmp_path / "home"), "PATH": os.environ["PATH"]}
    start = build_server_command(Launcher.WSL, f"{server} {tmp_path / 'ours'}")
    other = subprocess.Popen([str(server), str(tmp_path / "other")], env=env)
    # what runs inside WSL; its stdin stays open (the app's pipe)
    ours = subprocess.Popen(start[start.index("bash") :], env=env, stdin=subprocess.PIPE)
    try:
        pidfile = tmp_path / "home" / ".local" / "share" / "tingxie" / "server.pid"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (pidfile.exists() and pidfile.read_text()):
            time.sleep(0.05)
        noted = int(pidfile.read_text())
        assert "tingxie-server" in Path(f"/proc/{noted}/cmdline").read_text()  # the server
        time.sleep(0.3)  # the trap is set
        stop = build_wsl_stop_command()
        subprocess.run(stop[stop.index("bash") :], env=env, check=True, timeout=10)
        assert ours.wait(10) == 0
        assert (tmp_path / "ours").read_text() == "TERM\n"
        assert other.poll() is None and not (tmp_path / "other").exists()
        # A stale file whose process id now belongs to another program: left alone.
        stranger = subprocess.Popen(["sleep", "30"])
        pidfile.write_text(f"{stranger.pid}\n")
        subprocess.run(stop[stop.index("bash") :], env=env, check=False, timeout=10)
        time.sleep(0.2)
        assert stranger.poll() is None
        stranger.kill()
        stranger.wait(5)
    finally:
        for proc in (ours, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
