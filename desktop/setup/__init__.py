"""First-run setup: find out what this PC can do, recommend a server, set it up.

- ``facts``: parse the output of the probe commands (wsl.exe, nvidia-smi, df, python)
- ``problems``: every failure in plain words, with what to do next
- ``decide``: facts → the options (WSL GPU server, CPU server here, remote server)
- ``commands``: the command lines of each setup step (pure)
- ``progress``: read pip, download and server output as progress and failures
- ``probe`` and ``steps``: the thin I/O layers, through the launcher's process runner
"""
