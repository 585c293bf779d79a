"""uvicorn's httptools protocol with the limits a server facing many clients needs: a deadline
for the request head and for the body, a cap on head size and on open connections, and no
WebSocket upgrades. uvicorn itself only times out idle keep-alive connections, so a client that
sends nothing, half a head or half a body would otherwise hold a connection (and a file
descriptor) forever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
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


# The endpoints whose answers may come from memory before ASGI (see `answer_from_memory`):
# a cache hit is then one write, without the ASGI cycle, its task and its messages (which
# cost more than the answer: profiled under wrk).
FROM_MEMORY: dict[bytes, str] = {
    b"/v1/data/trino/" + name: name.decode()
    for name in (b"allow", b"batch", b"rowFilters", b"columnMask", b"batchColumnMasks")
}
AnswerFromMemory = Callable[[str, bytes], "bytes | None"]


class OneWriteTransport:
    """The transport an ASGI cycle writes its response to: it holds the response head until the
    first body write and sends both in one write. uvicorn writes them separately, and with
    TCP_NODELAY that is two segments: the client (Trino's Jetty) then wakes up and parses twice
    for one small answer, which costs it more CPU than the answer costs the sidecar."""

    __slots__ = ("_done", "_head", "_transport", "_wrote")

    def __init__(self, transport: asyncio.Transport, done: Callable[[], None]) -> None:
        self._transport = transport
        self._done = done  # the cycle's end-of-response callback
        self._head: bytes | None = None
        self._wrote = False

    def write(self, data: bytes) -> None:
        if not self._wrote:  # the head
            self._wrote, self._head = True, bytes(data)
        elif self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head + data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a head still held (a response that ended without a body write: HEAD)."""
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def response_done(self) -> None:
        self.flush()
        self._done()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...
        return getattr(self._transport, name)


class GuardedHttpTools(HttpToolsProtocol):
    _deadline = 0.0  # loop time by which the current stage must end; 0: none
    _stage = ""
    _stage_seconds = 0.0
    _head_bytes = -1  # bytes of the current request head; -1 between requests
    # A request that may be answered from memory: its endpoint, and its body as it arrives.
    # The ASGI cycle is only started (late, with the whole body) when memory has no answer.
    _held: str | None = None
    _held_body: bytearray | None = None

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
        endpoint = FROM_MEMORY.get(self.url)
        if endpoint is not None and self._may_hold():
            self._held, self._held_body = endpoint, bytearray()
            return
        self._start_cycle()

    def _start_cycle(self) -> None:
        super().on_headers_complete()
        # Not with `Expect: 100-continue`: the interim response must leave on its own, at once.
        cycle = self.cycle
        if cycle is not None and not self.expect_100_continue:
            one = OneWriteTransport(self.transport, cycle.on_response)
            cycle.transport, cycle.on_response = one, one.response_done  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        held = self._held_body
        if held is None:
            super().on_body(body)
            return
        held += body
        if len(held) > LIMITS.max_body_bytes:  # the app's 413, through ASGI
            self._release()

    def on_message_complete(self) -> None:
        self._disarm()
        if self._held is not None:
            answer = self._answerer()(self._held, bytes(self._held_body or b""))  # type: ignore[misc]
            if answer is not None:
                self._held = self._held_body = None
                self._write_answer(answer)
                return
            self._release()
        super().on_message_complete()

    def _may_hold(self) -> bool:
        """Only a plain POST, while no other response on this connection is pending (answers
        keep the order of the requests)."""
        return not (
            self.parser.get_method() != b"POST"
            or self.expect_100_continue
            or self.parser.should_upgrade()
            or self.pipeline
            or (self.cycle is not None and not self.cycle.response_complete)
            or self._answerer() is None
        )

    def _answerer(self) -> AnswerFromMemory | None:
        return getattr(self.app, "answer_from_memory", None)

    def _release(self) -> None:
        """Hand a held request to ASGI as it would have gone: cycle, then the body so far."""
        body = bytes(self._held_body or b"")
        self._held = self._held_body = None
        self._start_cycle()
        super().on_body(body)

    def _write_answer(self, answer: bytes) -> None:
        keep_alive = self.parser.should_keep_alive()
        head = [b"HTTP/1.1 200 OK\r\n"]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(answer))
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", answer)
        self.transport.write(b"".join(head))  # one write: head and body
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
        elif self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

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
