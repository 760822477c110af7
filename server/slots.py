"""Who gets a connection slot: the admission rule, as a pure function.

Connections are grouped by the address they come from: its IP address, exactly (an
IPv6 /64 would be the natural unit on the internet, but on a LAN it is every machine of
the subnet, and a lab server serving many machines is what this is for). The rule, in
order:

1. ``max_per_address`` (0: off) caps the connections of one non-loopback address. A
   newcomer from an address at its cap takes the slot of that address's own connection
   idle longest, if one is idle; else it is refused. Loopback is exempt: the usual
   set-up is an app on Windows and its server in WSL, whose clients all come from
   127.0.0.1.
2. Below ``max_connections`` everyone is admitted.
3. At the limit the connection idle longest (no utterance open or decoding) anywhere
   gives its slot up: closing it loses nobody's words.
4. If every connection is dictating, a newcomer whose address holds at least two fewer
   connections than the address holding the most takes a slot of that address (its
   connection silent longest), dictating or not. "Two fewer" makes each displacement
   even the shares out, so two addresses never take a slot from each other in turns:
   the busiest address keeps at least as many connections as the newcomer's afterwards.
5. Else the newcomer is refused (``server_busy``).

Users behind one NAT address share that address's part, so the rule cannot tell them
apart; a host that takes many addresses (IPv6 lets it pick from its /64) counts as
many. What it guarantees is that one address, however busy, cannot keep every other
address out.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar


@dataclass(frozen=True)
class PeerAddress:
    """Where a connection comes from, as the admission rule counts it."""

    key: str  # the IP address, or the raw text of anything else
    loopback: bool


def peer_address(remote: object) -> PeerAddress:
    """The :class:`PeerAddress` of a socket's remote address (``(host, port, ...)``)."""
    host = remote[0] if isinstance(remote, tuple) and remote else remote
    text = str(host)
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # no zone index on link-local
    except ValueError:
        return PeerAddress(text, loopback=False)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket's IPv4 client is that IPv4 address
    return PeerAddress(str(ip), loopback=ip.is_loopback)


class SlotHolder(Protocol):
    """What the rule needs to know of a connection that holds a slot."""

    @property
    def address(self) -> PeerAddress: ...

    @property
    def idle(self) -> bool:
        """No utterance open or decoding."""
        ...

    @property
    def idle_since(self) -> float:
        """When it last sent a message or got its last final."""
        ...


Holder = TypeVar("Holder", bound=SlotHolder)


class Verdict(Enum):
    ADMIT = "admit"  # a slot is free
    DISPLACE_IDLE = "displace_idle"  # an idle connection gives its slot up
    DISPLACE_OWN_IDLE = "displace_own_idle"  # the address is at its cap: its own idle one
    DISPLACE_BUSY = "displace_busy"  # the busiest address gives up a dictating connection
    REFUSE_FULL = "refuse_full"  # every slot is dictating and the shares are even
    REFUSE_ADDRESS = "refuse_address"  # the address is at max_per_address, all dictating

    @property
    def refused(self) -> bool:
        return self in (Verdict.REFUSE_FULL, Verdict.REFUSE_ADDRESS)


@dataclass(frozen=True)
class Admission(Generic[Holder]):
    verdict: Verdict
    #: The connection to close (code 4001) for the newcomer, with the DISPLACE_ verdicts.
    victim: Holder | None = None


def _silent_longest(holders: Iterable[Holder]) -> Holder:
    return min(holders, key=lambda h: h.idle_since)


def admit(
    newcomer: PeerAddress,
    held: Iterable[Holder],
    *,
    max_connections: int,
    max_per_address: int = 0,
) -> Admission[Holder]:
    """Decide about a newcomer from ``newcomer`` given the connections ``held``."""
    holders = list(held)
    if max_per_address > 0 and not newcomer.loopback:
        own = [h for h in holders if h.address.key == newcomer.key]
        if len(own) >= max_per_address:
            own_idle = [h for h in own if h.idle]
            if not own_idle:
                return Admission(Verdict.REFUSE_ADDRESS)
            return Admission(Verdict.DISPLACE_OWN_IDLE, _silent_longest(own_idle))
    if len(holders) < max_connections:
        return Admission(Verdict.ADMIT)
    idle = [h for h in holders if h.idle]
    if idle:
        return Admission(Verdict.DISPLACE_IDLE, _silent_longest(idle))
    counts = Counter(h.address.key for h in holders)
    most = max(counts.values(), default=0)
    if counts[newcomer.key] + 2 > most:
        return Admission(Verdict.REFUSE_FULL)
    busiest = {key for key, count in counts.items() if count == most}
    return Admission(
        Verdict.DISPLACE_BUSY, _silent_longest(h for h in holders if h.address.key in busiest)
    )
