"""A TCP proxy on loopback that can be shut and opened again on the same port: shut, nothing
listens there (connections are refused) and the connections it carried are cut, as when a
database server is down; open, it forwards to the target again."""

from __future__ import annotations

import asyncio
import threading

from devstack.processes import free_port


class GateProxy:
    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.port = port or free_port()
        self._target = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    @property
    def is_open(self) -> bool:
        return self._server is not None

    def open(self) -> None:
        self._call(self._open())

    def shut(self) -> None:
        self._call(self._shut())

    def close(self) -> None:
        self.shut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _open(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _shut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stop listening first, then cut what it carried
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        self._writers -= {writer, up_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
