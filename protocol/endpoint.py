"""Where a tingxie server listens unless told otherwise: the server's ``--host`` and
``--port`` defaults and every client's default URL (the tray's settings, tingxie-cli,
the first-run setup) come from here, so they cannot drift apart."""

from __future__ import annotations

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_SERVER_URL"]

#: Loopback: a server is reachable from other machines only when asked (``--host``).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_SERVER_URL = f"ws://{DEFAULT_HOST}:{DEFAULT_PORT}"
