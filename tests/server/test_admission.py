"""The admission rule (server/slots.py) as a pure function: who gets a slot at the
connection limit, and what one address can hold."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import pytest

from server.config import ConfigError, parse_config
from server.slots import Admission, PeerAddress, Verdict, admit, peer_address

LOOPBACK = PeerAddress("127.0.0.1", loopback=True)
HOG = PeerAddress("203.0.113.7", loopback=False)
OTHER = PeerAddress("198.51.100.2", loopback=False)
THIRD = PeerAddress("192.0.2.9", loopback=False)


@dataclass
class Held:
    """A connection holding a slot, as the rule sees it."""

    address: PeerAddress
    idle: bool
    idle_since: float


def busy(address: PeerAddress, count: int, since: float = 100.0) -> list[Held]:
    return [Held(address, idle=False, idle_since=since + i) for i in range(count)]


def decide(
    newcomer: PeerAddress, held: list[Held], limit: int, per_address: int = 0
) -> Admission[Held]:
    return admit(newcomer, held, max_connections=limit, max_per_address=per_address)


# ---------------------------------------------------------------- the limit, no caps


def test_below_the_limit_everyone_is_admitted() -> None:
    assert decide(HOG, busy(HOG, 3), limit=4) == Admission(Verdict.ADMIT)


def test_at_the_limit_the_idle_longest_gives_way_whoever_the_newcomer() -> None:
    held = [*busy(OTHER, 2), Held(HOG, True, 50.0), Held(OTHER, True, 10.0)]
    admission = decide(HOG, held, limit=4)
    assert admission.verdict is Verdict.DISPLACE_IDLE
    assert admission.victim is held[3]  # idle since 10, not the newcomer's own idle one


def test_an_address_dictating_on_every_slot_gives_one_up_to_another_address() -> None:
    held = busy(HOG, 4)
    held[2].idle_since = 1.0  # silent longest (a stalled stream): it goes first
    admission = decide(OTHER, held, limit=4)
    assert admission == Admission(Verdict.DISPLACE_BUSY, held[2])


def test_the_busiest_address_gives_way_even_over_a_longer_silent_other() -> None:
    held = [*busy(HOG, 3, since=100.0), *busy(OTHER, 1, since=1.0)]
    admission = decide(THIRD, held, limit=4)
    assert admission.verdict is Verdict.DISPLACE_BUSY
    assert admission.victim is not None and admission.victim.address == HOG


def test_an_address_one_short_of_the_most_is_refused_so_shares_never_flip() -> None:
    # HOG 2, OTHER 1: taking one of HOG's would leave OTHER 2, HOG 1, and HOG's
    # reconnect would take it back, and so on.
    assert decide(OTHER, [*busy(HOG, 2), *busy(OTHER, 1)], limit=3).verdict is (Verdict.REFUSE_FULL)
    assert decide(HOG, busy(HOG, 3), limit=3).verdict is Verdict.REFUSE_FULL
    # A single slot cannot be shared: the one dictating keeps it.
    assert decide(OTHER, busy(HOG, 1), limit=1).verdict is Verdict.REFUSE_FULL


def test_loopback_clients_share_one_address_and_never_displace_each_other_busy() -> None:
    assert decide(LOOPBACK, busy(LOOPBACK, 8), limit=8).verdict is Verdict.REFUSE_FULL
    # ...but a remote newcomer gets a share of a server loopback clients fill.
    assert decide(OTHER, busy(LOOPBACK, 8), limit=8).verdict is Verdict.DISPLACE_BUSY


def test_repeated_newcomers_converge_to_even_shares_and_stop() -> None:
    """Each displaced connection reconnects at once: the process ends, every address
    within one connection of the others (no address is starved, nothing cycles)."""
    limit = 12
    held = busy(HOG, limit)
    waiting = [OTHER, THIRD] * 10 + [HOG] * 10
    clock = itertools.count(1000)
    for _ in range(200):
        if not waiting:
            break
        newcomer = waiting.pop(0)
        admission = decide(newcomer, held, limit=limit)
        if admission.verdict.refused:
            continue
        assert admission.verdict is Verdict.DISPLACE_BUSY
        assert admission.victim is not None
        held.remove(admission.victim)
        waiting.append(admission.victim.address)  # it reconnects
        held.append(Held(newcomer, idle=False, idle_since=float(next(clock))))
    assert not waiting, "displacements went on for ever"
    counts = Counter(h.address.key for h in held)
    assert sorted(counts.values()) == [4, 4, 4]


# ---------------------------------------------------------------- the cap per address


def test_the_cap_refuses_an_address_dictating_on_all_its_slots() -> None:
    assert decide(HOG, busy(HOG, 2), limit=100, per_address=2) == Admission(Verdict.REFUSE_ADDRESS)
    assert decide(HOG, busy(HOG, 1), limit=100, per_address=2).verdict is Verdict.ADMIT
    assert decide(OTHER, busy(HOG, 2), limit=100, per_address=2).verdict is Verdict.ADMIT


def test_at_its_cap_an_address_gives_up_its_own_idle_longest() -> None:
    held = [*busy(HOG, 1), Held(HOG, True, 30.0), Held(HOG, True, 20.0), Held(OTHER, True, 1.0)]
    admission = decide(HOG, held, limit=100, per_address=3)
    assert admission == Admission(Verdict.DISPLACE_OWN_IDLE, held[2])


def test_loopback_is_exempt_from_the_cap() -> None:
    assert decide(LOOPBACK, busy(LOOPBACK, 5), limit=100, per_address=2).verdict is Verdict.ADMIT


def test_no_cap_by_default() -> None:
    assert decide(HOG, busy(HOG, 99), limit=100).verdict is Verdict.ADMIT


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("remote", "key", "loopback"),
    [
        (("127.0.0.1", 50000), "127.0.0.1", True),
        (("127.0.0.2", 50000), "127.0.0.2", True),
        (("::1", 50000, 0, 0), "::1", True),
        (("::ffff:127.0.0.1", 1, 0, 0), "127.0.0.1", True),  # dual-stack socket
        (("::ffff:198.51.100.2", 1, 0, 0), "198.51.100.2", False),
        (("198.51.100.2", 1), "198.51.100.2", False),
        (("2001:db8:1:2:aaaa::1", 1, 0, 0), "2001:db8:1:2:aaaa::1", False),
        (("fe80::1%eth0", 1, 0, 2), "fe80::1", False),
        (None, "None", False),
    ],
)
def test_peer_address(remote: object, key: str, loopback: bool) -> None:
    address = peer_address(remote)
    assert (address.key, address.loopback) == (key, loopback)


def test_machines_of_one_ipv6_subnet_are_different_addresses() -> None:
    """A lab's machines share their LAN's /64: each is its own address."""
    first = peer_address(("2001:db8:1:2::a", 1, 0, 0))
    second = peer_address(("2001:db8:1:2::b", 1, 0, 0))
    assert first != second
    assert decide(second, [Held(first, False, 1.0)], limit=9, per_address=1).verdict is (
        Verdict.ADMIT
    )
    assert decide(first, [Held(first, False, 1.0)], limit=9, per_address=1).verdict is (
        Verdict.REFUSE_ADDRESS
    )


# ---------------------------------------------------------------- configuration


def test_max_connections_per_address_flag_and_variable() -> None:
    assert parse_config([], env={}).max_connections_per_address == 0
    assert (
        parse_config(["--max-connections-per-address", "4"], env={}).max_connections_per_address
        == 4
    )
    env = {"TINGXIE_MAX_CONNECTIONS_PER_ADDRESS": "3"}
    assert parse_config([], env=env).max_connections_per_address == 3
    with pytest.raises(ConfigError, match="TINGXIE_MAX_CONNECTIONS_PER_ADDRESS"):
        parse_config([], env={"TINGXIE_MAX_CONNECTIONS_PER_ADDRESS": "-1"})
