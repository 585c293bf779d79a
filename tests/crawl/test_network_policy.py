"""The network policy (`pdp.crawl.network`) as a decision table, and its guard on real sockets."""

from __future__ import annotations

import socket

import pytest

from pdp.crawl.network import NetworkPolicy, NetworkRefused

DEFAULT = NetworkPolicy.of()
LOOPBACK_ONE = NetworkPolicy.of(allow=("0.0.0.0/0", "::/0", "127.0.0.1/32"))
ONLY_DATA = NetworkPolicy.of(allow=("10.0.0.0/8",), deny=("10.9.0.0/16",))


@pytest.mark.parametrize(
    ("policy", "address", "permitted"),
    [
        (DEFAULT, "10.1.2.3", True),  # private networks: where databases live
        (DEFAULT, "203.0.113.7", True),
        (DEFAULT, "127.0.0.1", False),  # the PDP's own host
        (DEFAULT, "::1", False),
        (DEFAULT, "::ffff:127.0.0.1", False),  # loopback spelled as IPv6
        (DEFAULT, "169.254.169.254", False),  # cloud metadata
        (DEFAULT, "fd00:ec2::254", False),
        (DEFAULT, "0.0.0.0", False),
        (DEFAULT, "224.0.0.1", False),
        (DEFAULT, "not-an-address", False),
        (LOOPBACK_ONE, "127.0.0.1", True),  # /32 allowed beats the /8 denied
        (LOOPBACK_ONE, "127.0.0.2", False),
        (ONLY_DATA, "10.1.2.3", True),
        (ONLY_DATA, "10.9.0.1", False),  # the more specific deny
        (ONLY_DATA, "203.0.113.7", False),  # an allow list replaces "everywhere"
    ],
)
def test_the_most_specific_network_decides(policy, address, permitted):
    assert policy.permits(address) is permitted


def test_a_name_is_refused_when_any_address_it_resolves_to_is():
    with pytest.raises(NetworkRefused, match="network policy"):
        DEFAULT.addresses("localhost", 5432)
    assert LOOPBACK_ONE.addresses("127.0.0.1", 5432) == ["127.0.0.1"]
    for host in ("/var/run/postgresql", "a,b", ""):  # a socket directory, libpq's host lists
        with pytest.raises(NetworkRefused):
            LOOPBACK_ONE.addresses(host, 5432)


def test_the_guard_checks_the_address_a_socket_connects_to():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with DEFAULT.guard(), pytest.raises(NetworkRefused):
            socket.create_connection(("localhost", port), timeout=2)
        with LOOPBACK_ONE.guard(), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        with socket.create_connection(("127.0.0.1", port), timeout=2):  # no guard: no rule
            pass
