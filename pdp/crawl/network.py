"""Which networks connection checks and syncs may reach: pdp.yaml `control.network`.

A connection's endpoint is chosen by whoever registers it, so without a rule the PDP would
connect wherever it is told: its own loopback services, the cloud's metadata endpoint, any port
of its network. The operator's rule is a list of networks to `allow` (default: every address)
and to `deny` (default `DEFAULT_DENY`); of the networks that contain an address, the most
specific decides (an `allow` wins a tie), so `allow: [127.0.0.1/32]` opens that one address of
the denied loopback network.

The rule is checked on the address actually connected to, never on a name (a name can resolve
to a permitted address when checked and to another when connected: DNS rebinding):

* Python sockets (Trino's, Snowflake's and Databricks' HTTP clients, OAuth token requests):
  inside `guard()`, every `socket.connect` of the thread is checked by an audit hook before
  the connection is made;
* libpq, which connects in C: `addresses()` resolves the name once and checks each address;
  the PostgreSQL crawler then connects to that address (`hostaddr`), never to the name again.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import socket
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Loopback, "this host", link-local (169.254.169.254 and fd00:ec2::254 are the cloud metadata
# endpoints), multicast and broadcast: the PDP's own services and its host's, never a database.
DEFAULT_DENY = (
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "fe80::/10",
    "fd00:ec2::254/128",
    "ff00::/8",
)
EVERYWHERE = ("0.0.0.0/0", "::/0")


class NetworkRefused(OSError):
    """The network policy refuses this address (or this kind of address)."""


@dataclass(frozen=True)
class NetworkPolicy:
    allow: tuple[Network, ...]
    deny: tuple[Network, ...]

    @classmethod
    def of(
        cls, allow: Iterable[str] = EVERYWHERE, deny: Iterable[str] = DEFAULT_DENY
    ) -> NetworkPolicy:
        """Raises ValueError naming a network that is not one."""
        return cls(_networks(allow), _networks(deny))

    def permits(self, address: str) -> bool:
        try:
            ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        best_allow = max((n.prefixlen for n in self.allow if ip in n), default=-1)
        best_deny = max((n.prefixlen for n in self.deny if ip in n), default=-1)
        return best_allow >= 0 and best_allow >= best_deny

    def check(self, address: str) -> None:
        if not self.permits(address):
            raise NetworkRefused(
                f"the address {address} is not allowed by the PDP's network policy "
                "(pdp.yaml control.network)"
            )

    def addresses(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, each permitted (else NetworkRefused: one
        forbidden address refuses the name, so that a retry cannot land on it)."""
        if not host or host.startswith(("/", "@")) or "," in host:
            raise NetworkRefused(f"{host!r} is not a host name or address")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise NetworkRefused(f"cannot resolve {host!r}") from None
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in found:
            self.check(address)
        return found

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Check every Python socket connection this thread makes inside the block."""
        _install_hook()
        token = _ACTIVE.set(self)
        try:
            yield
        finally:
            _ACTIVE.reset(token)


def _networks(values: Iterable[str]) -> tuple[Network, ...]:
    result = []
    for value in values:
        try:
            result.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError:
            raise ValueError(
                f"{value!r} is not a network (write 10.0.0.0/8 or 2001:db8::/32)"
            ) from None
    return tuple(result)


_ACTIVE: contextvars.ContextVar[NetworkPolicy | None] = contextvars.ContextVar(
    "pdp_network_policy", default=None
)
_HOOKED = False
_HOOK_LOCK = threading.Lock()


def active() -> NetworkPolicy | None:
    """The policy guarding this thread, if any (the PostgreSQL crawler pins its address)."""
    return _ACTIVE.get()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect":
        return
    policy = _ACTIVE.get()
    if policy is None:
        return
    sock, address = args
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        raise NetworkRefused("only TCP/IP connections are allowed to connection endpoints")
    policy.check(str(address[0]))


def _install_hook() -> None:
    # An audit hook cannot be removed: installed once, it does nothing outside a guard.
    global _HOOKED
    with _HOOK_LOCK:
        if not _HOOKED:
            sys.addaudithook(_audit)
            _HOOKED = True
