"""Traffic to this machine never goes through a proxy.

websockets (15 and later) and urllib use the system proxy, and neither bypasses
``127.0.0.1`` by default: with a local proxy tool running (common where the app's users
live), the app's own connection to its local server would go out to the proxy and fail.
So loopback addresses are reached directly; other hosts keep the system's proxy rules.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.request
from typing import Literal
from urllib.parse import urlsplit

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """``127.0.0.0/8``, ``::1``, ``localhost`` (a name the resolver never sends away)."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_loopback_url(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and is_loopback_host(host)


def websocket_proxy(url: str) -> Literal[True] | None:
    """``proxy=`` for ``websockets.asyncio.client.connect``: None (no proxy) for a
    loopback URL, True (the system's proxy settings) otherwise."""
    return None if is_loopback_url(url) else True


def opener_for(url: str, context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    """A urllib opener for ``url``: without any proxy when it is a loopback URL."""
    handlers: list[urllib.request.BaseHandler] = []
    if is_loopback_url(url):
        handlers.append(urllib.request.ProxyHandler({}))  # {}: no proxy, whatever is set
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)
