"""Listen addresses: a port already taken is reported as one line naming the address."""

from __future__ import annotations

import errno
import socket


class AddressInUse(OSError):
    """Another process holds the address (a second `pdp up`, an old sidecar, ...)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(errno.EADDRINUSE, f"address {address} is in use")

    def __str__(self) -> str:
        return f"address {self.address} is in use"


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ensure_free(host: str, port: int) -> None:
    """Raise AddressInUse if another process holds `host:port` (bound as a server binds it,
    with SO_REUSEADDR, so a port in TIME_WAIT counts as free). Any other failure is left to
    the server itself to report."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(address(host, port)) from None


def ensure_listen_free(listen: str) -> None:
    """`ensure_free` for a `host:port` setting; port 0 (any free port) always is."""
    host, _, port = listen.rpartition(":")
    if host and port.isdigit() and int(port):
        ensure_free(host.strip("[]"), int(port))
