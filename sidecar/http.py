"""uvicorn's httptools protocol with the limits a server facing many clients needs: a deadline
for the request head and for the body, a cap on head size and on open connections, and no
WebSocket upgrades. uvicorn itself only times out idle keep-alive connections, so a client that
sends nothing, half a head or half a body would otherwise hold a connection (and a file
descriptor) forever."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpLimits:
    """sidecar.yaml `http:`; every value per worker process."""

    max_connections: int = 1_000  # open connections; beyond: 503 and closed at once
    max_in_flight: int = 256  # requests being answered; beyond: 503
    head_timeout: float = 10.0  # from connection (or first byte) to the end of the head: 408
    body_timeout: float = 10.0  # from the end of the head to the end of the body: 408
    idle_timeout: float = 75.0  # keep-alive connection without a request: closed
    max_head_bytes: int = 64 * 1024  # request line and headers: 431
    max_body_bytes: int = 8 * 1024 * 1024  # 413 (the JSON parse of a body blocks its worker)
    max_batch_items: int = 100_000  # filterResources items: 413


LIMITS = HttpLimits()  # replaced in each worker by the app factory, before it serves


def configure(limits: HttpLimits) -> None:
    global LIMITS
    LIMITS = limits


def _response(status: int, reason: str, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, reason.encode(), len(body))
    ) + body


SWEEP_SECONDS = 0.25  # how often a worker looks for connections past their deadline
_sweeping: set[asyncio.AbstractEventLoop] = set()


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """One timer per worker instead of one per request (a timer costs microseconds, a few
    per request on the hot path): expire every connection past its deadline."""
    now = loop.time()
    for connection in list(connections):
        if isinstance(connection, GuardedHttpTools) and 0 < connection._deadline < now:
            connection._expire()
    loop.call_later(SWEEP_SECONDS, _sweep, loop, connections)


class GuardedHttpTools(HttpToolsProtocol):
    _deadline = 0.0  # loop time by which the current stage must end; 0: none
    _stage = ""
    _stage_seconds = 0.0
    _head_bytes = -1  # bytes of the current request head; -1 between requests

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.loop not in _sweeping:
            _sweeping.add(self.loop)
            self.loop.call_later(SWEEP_SECONDS, _sweep, self.loop, self.connections)
        limits = LIMITS
        if len(self.connections) > limits.max_connections:
            self._refuse(503, "Service Unavailable", "too many open connections; retry")
            return
        self._arm(limits.head_timeout, "request head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        in_head = self._head_bytes >= 0
        if in_head:
            self._head_bytes += len(data)
        super().data_received(data)  # may begin a head (0) or complete one (-1)
        if self._head_bytes >= 0 and not in_head:
            self._head_bytes = len(data)  # a head began in this chunk
        if self._head_bytes > LIMITS.max_head_bytes:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"request head larger than {LIMITS.max_head_bytes} bytes",
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if not self._deadline:  # a keep-alive connection starting its next request
            self._arm(LIMITS.head_timeout, "request head")

    def on_headers_complete(self) -> None:
        self._head_bytes = -1
        self._arm(LIMITS.body_timeout, "request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _unsupported_upgrade_warning(self) -> None:
        # WebSocket is off (ws="none"): the request is answered as plain HTTP (a 4xx), quietly.
        pass

    def _arm(self, seconds: float, what: str) -> None:
        self._deadline = self.loop.time() + seconds
        self._stage, self._stage_seconds = what, seconds

    def _disarm(self) -> None:
        self._deadline = 0.0

    def _expire(self) -> None:
        self._deadline = 0.0
        writing = self.cycle is not None and not self.cycle.response_complete
        if self._stage == "request head" and writing:
            return  # a response is being written: not this deadline's business
        self._refuse(
            408, "Request Timeout", f"{self._stage} not received within {self._stage_seconds:g}s"
        )

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app stops waiting for this body
            self.cycle.message_event.set()
        log.debug("HTTP %d to %s: %s", status, self.client, message)
        self.transport.write(_response(status, reason, message))
        self.transport.close()
