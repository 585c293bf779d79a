"""A TCP relay between the PDP's crawler and PostgreSQL, in the test's hands: the seam where a
platform is slow. `hold(after=n, latency=s)` lets n more connections through, answering on
them `s` seconds late, and makes the ones after wait (accepted, not yet relayed) until
`release()`: the crawler meets a busy platform, slow to answer and slower to open a session.
(The latency keeps the first session busy, so that a parallel listing needs a second one.)
Loopback only; every thread ends at `close()`."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time


class Gate:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.waiting = 0  # connections held now
        self._open = threading.Event()
        self._open.set()
        self._admit: int | None = None  # connections let through before holding; None: all
        self._latency = 0.0  # while holding, answers on admitted connections wait this long
        self._guard = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def hold(self, after: int = 0, latency: float = 0.0) -> None:
        with self._guard:
            self._admit, self._latency = after, latency
            self._open.clear()

    def release(self) -> None:
        with self._guard:
            self._admit = None
            self._open.set()

    def close(self) -> None:
        self.release()
        self.listener.close()
        with self._guard:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            with self._guard:
                self._sockets.append(client)
                let_through = self._admit is None or self._admit > 0
                if self._admit is not None and self._admit > 0:
                    self._admit -= 1
            thread = threading.Thread(target=self._relay, args=(client, let_through), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket, let_through: bool) -> None:
        if not let_through:
            with self._guard:
                self.waiting += 1
            self._open.wait(60)
            with self._guard:
                self.waiting -= 1
        try:
            server = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        with self._guard:
            self._sockets.append(server)
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, server)
            selector.register(server, selectors.EVENT_READ, client)
            while True:
                for key, _ in selector.select(timeout=1):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                        if data:
                            if source is server and not self._open.is_set():
                                time.sleep(self._latency)
                            key.data.sendall(data)
                    except OSError:
                        data = b""
                    if not data:
                        for sock in (client, server):
                            with contextlib.suppress(OSError):
                                sock.close()
                        return
                if client.fileno() < 0 or server.fileno() < 0:
                    return
