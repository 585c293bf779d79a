"""An ASGI app on uvicorn, on the event loop that is already running, for as long as a block
lasts. uvicorn normally owns the process (its signals, its loop); here the host does."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from pdp.config.listen import AddressInUse, address

START_TIMEOUT = 10.0


class _EmbeddedServer(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to the host process instead of capturing them as uvicorn does."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off (TCP_NODELAY) only on connections whose socket
    # says so; with proto 0 a keep-alive answer written in two parts waited for the client's
    # delayed ACK, 40 ms per request after a connection's first.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(address(host, port)) from None
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, host: str, port: int) -> AsyncIterator[int]:
    """Serve `app` on host:port (0: a free port) until the block ends; yields the bound port."""
    sock = bind(host, port)
    config = uvicorn.Config(
        app,
        interface="asgi3",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:
                if task.done():
                    await task
                    raise RuntimeError(f"the server on {host}:{port} stopped during start-up")
                await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
