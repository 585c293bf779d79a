"""`pdp.web.embedded.bind`: the listening socket of every embedded server (admin API, console,
development issuer, monitoring) gives connections with Nagle's algorithm off, as asyncio's own
servers do; with it on, each answer after a keep-alive connection's first waited for the
client's delayed ACK (40 ms a request)."""

from __future__ import annotations

import asyncio
import socket

from pdp.web.embedded import bind


def test_accepted_connections_have_tcp_nodelay():
    async def accepted() -> int:
        listening = bind("127.0.0.1", 0)
        port = listening.getsockname()[1]
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Protocol, sock=listening)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            value = await asyncio.wait_for(seen, 5)
            writer.close()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(accepted()) != 0
