"""Who may open a connection: the handshake's token and Origin checks (pure).

docs/security.md explains what each check protects against.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from server.config import normalize_origin


def offered_token(authorization: str | None, path: str) -> str:
    """The token a request presents: ``Authorization: Bearer`` first, else the
    ``token`` query parameter (browsers cannot set headers on a WebSocket). ``""`` if
    none, so a missing token is checked exactly like a wrong one."""
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip()
    values = parse_qs(urlsplit(path).query).get("token")
    return values[0] if values else ""


def token_matches(offered: str, expected: str) -> bool:
    """Constant-time comparison. Both sides are hashed first so that neither the
    content nor the length of the expected token shows in the time taken."""
    return hmac.compare_digest(
        hashlib.sha256(offered.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


def origin_allowed(origins: Sequence[str], allowed: frozenset[str]) -> bool:
    """Whether a request with these ``Origin`` header values may connect.

    No header: not a browser (or a same-origin GET), allowed — the token guards those.
    A browser always sends one on a WebSocket handshake: it must be in ``allowed``.
    """
    if not origins:
        return True
    if len(origins) > 1:
        return False
    try:
        return normalize_origin(origins[0]) in allowed
    except ValueError:
        return False
