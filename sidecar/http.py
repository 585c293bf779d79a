"""uvicorn's httptools protocol with the limits a server facing many clients needs: a deadline
for the request head and for the body, a cap on head size, caps on open connections (per worker
and per client address) that fit the open-files limit, and no WebSocket upgrades. uvicorn itself
only times out idle keep-alive connections, so a client that sends nothing, half a head or half a
body would otherwise hold a connection (and a file descriptor) forever."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import Counter
from collections.abc import Callable, Sized
from dataclasses import dataclass, replace
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpLimits:
    """sidecar.yaml `http:`; every value per worker process."""

    # open connections, at most what the open-files limit leaves (see `configure`); at the cap an
    # idle keep-alive connection is closed for a new one, and with none idle the new one gets 503
    max_connections: int = 1_000
    # open connections from one client address (None: half of max_connections); beyond: 503
    max_connections_per_client: int | None = None
    max_in_flight: int = 256  # requests being answered; beyond: 503
    head_timeout: float = 10.0  # from connection (or first byte) to the end of the head: 408
    body_timeout: float = 10.0  # from the end of the head to the end of the body: 408
    idle_timeout: float = 75.0  # keep-alive connection without a request: closed
    max_head_bytes: int = 64 * 1024  # request line and headers: 431
    max_body_bytes: int = 8 * 1024 * 1024  # 413 (the JSON parse of a body blocks its worker)
    max_batch_items: int = 100_000  # filterResources items (batch, batchColumnMasks): 413


LIMITS = HttpLimits()  # replaced in each worker by the app factory, before it serves


class TooLarge(Exception):
    """More than the sidecar's `http:` limits accept: HTTP 413."""


def check_items(items: Sized, where: str) -> None:
    """TooLarge for more items than `http.maxBatchItems` (filterResources of one body or ask)."""
    limit = LIMITS.max_batch_items
    if len(items) > limit:
        raise TooLarge(f"{where}: {len(items)} items; the limit is {limit}")


# Files a worker holds besides its client connections: the listening socket, the PDP channel
# (two sockets while it reconnects), stdio, uvloop's own, the metrics, state and decision-log
# files being written, a decision-log collector's connections. About 30 in practice; the rest
# is headroom, so that connections never take the descriptor one of these needs.
RESERVED_FILES = 64


def configure(limits: HttpLimits) -> None:
    """Install `limits` in this worker, with the connection caps fitted to its open-files limit
    (which __main__ raised to the hard limit): a cap above it would only fail connections
    silently, in the kernel's accept, before the cap is reached."""
    global LIMITS
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    room = limits.max_connections if soft == resource.RLIM_INFINITY else soft - RESERVED_FILES
    cap = max(1, min(limits.max_connections, room))
    if cap < limits.max_connections:
        log.warning(
            "http.maxConnections: %d does not fit the open-files limit of %d (%d kept for the "
            "PDP connection and files): at most %d connections per worker; raise the limit "
            "(ulimit -n, systemd LimitNOFILE=) to serve more",
            limits.max_connections,
            soft,
            RESERVED_FILES,
            cap,
        )
    per_client = min(limits.max_connections_per_client or max(1, cap // 2), cap)
    LIMITS = replace(limits, max_connections=cap, max_connections_per_client=per_client)
    log.info(
        "connections: at most %d per worker and %d per client address (open-files limit %s)",
        cap,
        per_client,
        "unlimited" if soft == resource.RLIM_INFINITY else soft,
    )


REPORT_SECONDS = 60.0  # connection caps reached: at most one log line per worker this often


class Gate:
    """The connections of one worker against its caps: how many are open, from which client
    address, and which are idle (waiting for a request, longest first), so that at the cap an
    idle keep-alive connection makes room for a new one. Otherwise idle connections, refreshed
    by a check now and then, could hold every slot and every fresh check would be refused."""

    def __init__(self) -> None:
        self.open = 0
        self.by_client: Counter[str] = Counter()
        self.idle: dict[GuardedHttpTools, None] = {}  # insertion order: idle since
        self.events: Counter[str] = Counter()  # refused_per_client, refused_total, evicted
        self._reported: Counter[str] = Counter()
        self._report_at = 0.0

    def admit(self, connection: GuardedHttpTools, client: str) -> str | None:
        """Count `connection` in; or why it is refused (it is then not counted)."""
        limits = LIMITS
        per_client = limits.max_connections_per_client or limits.max_connections
        if self.by_client[client] >= per_client:
            self._note("refused_per_client")
            return f"more than {per_client} open connections from {client}; retry"
        if self.open >= limits.max_connections:
            if not self.idle:
                self._note("refused_total")
                return "too many open connections; retry"
            oldest = next(iter(self.idle))
            self.release(oldest)
            oldest.transport.close()  # between requests (one its client sends just now fails)
            self._note("evicted")
        self.open += 1
        self.by_client[client] += 1
        self.idle[connection] = None
        connection._client_key = client
        return None

    def release(self, connection: GuardedHttpTools) -> None:
        client = connection._client_key
        if client is None:
            return
        connection._client_key = None
        self.idle.pop(connection, None)
        self.open -= 1
        self.by_client[client] -= 1
        if not self.by_client[client]:
            del self.by_client[client]

    def _note(self, event: str) -> None:
        """Count it; log when the caps are first reached, then at most once a minute."""
        self.events[event] += 1
        now = time.monotonic()
        if now < self._report_at:
            return
        self._report_at = now + REPORT_SECONDS
        since = self.events - self._reported
        self._reported = Counter(self.events)
        log.warning(
            "connection caps reached (%d per worker, %d per client address): %d idle "
            "connections closed for new ones, %d refused as over the worker cap and %d over "
            "a client's cap since the last report (next report in %gs at the earliest)",
            LIMITS.max_connections,
            LIMITS.max_connections_per_client or LIMITS.max_connections,
            since["evicted"],
            since["refused_total"],
            since["refused_per_client"],
            REPORT_SECONDS,
        )


GATE = Gate()  # one uvicorn server per worker process


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
# cost more than the answer: profiled under wrk). The product plugin's compact endpoint
# (sidecar/compact.py) too, named by its path as its metrics are.
FROM_MEMORY: dict[bytes, str] = {
    **{
        b"/v1/data/trino/" + name: name.decode()
        for name in (b"allow", b"batch", b"rowFilters", b"columnMask", b"batchColumnMasks")
    },
    b"/v1/pdp/decisions": "/v1/pdp/decisions",
}
AnswerFromMemory = Callable[[str, bytes], "bytes | None"]


_HEAD: list[Any] = [None, b""]  # the default headers last seen, and `_answer_head` of them


def _answer_head(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The head of an answer from memory up to its content-length value. Built once per list
    of default headers (uvicorn sets a new one each second, for its date header) rather than
    once per answer: a microsecond, a tenth of what the protocol costs per answer."""
    if _HEAD[0] is not default_headers:
        parts = [b"HTTP/1.1 200 OK\r\n"]
        for name, value in default_headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-type: application/json\r\ncontent-length: ")
        _HEAD[:] = default_headers, b"".join(parts)
    head: bytes = _HEAD[1]
    return head


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


IDLE = "idle"  # the stage of a keep-alive connection between requests answered from memory


class GuardedHttpTools(HttpToolsProtocol):
    _deadline = 0.0  # loop time by which the current stage must end; 0: none
    _stage = ""
    _stage_seconds = 0.0
    _head_bytes = -1  # bytes of the current request head; -1 between requests
    # A request that may be answered from memory: its endpoint, and its body as it arrives.
    # The ASGI cycle is only started (late, with the whole body) when memory has no answer.
    _held: str | None = None
    _held_body: bytes | bytearray | None = None  # a bytearray once a second piece arrives
    _client_key: str | None = None  # the client address while counted by GATE
    _answer: AnswerFromMemory | None = None  # the app's, looked up once per connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._answer = getattr(self.app, "answer_from_memory", None)
        if self.loop not in _sweeping:
            _sweeping.add(self.loop)
            self.loop.call_later(SWEEP_SECONDS, _sweep, self.loop, self.connections)
        refused = GATE.admit(self, self.client[0] if self.client else "")
        if refused is not None:
            self._refuse(503, "Service Unavailable", refused)
            return
        self._arm(LIMITS.head_timeout, "request head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        GATE.release(self)
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_if_waiting()

    def _idle_if_waiting(self) -> None:
        """Between requests (keep-alive, nothing pipelined, no next head begun): evictable."""
        kept = self.timeout_keep_alive_task is not None or (self._deadline and self._stage is IDLE)
        waiting = kept and self._head_bytes < 0
        if waiting and self._client_key is not None:
            GATE.idle[self] = None

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
        # What uvicorn's does, but the ASGI scope, which an answer from memory never reads:
        # `_start_cycle` builds it (a dict of dicts less per answer: 0.6 us of the protocol's
        # 10 or so)
        self.url, self.headers, self.expect_100_continue = b"", [], False
        GATE.idle.pop(self, None)
        self._head_bytes = 0
        if not self._deadline or self._stage is IDLE:  # a keep-alive connection's next request
            self._arm(LIMITS.head_timeout, "request head")

    def on_headers_complete(self) -> None:
        self._head_bytes = -1
        self._arm(LIMITS.body_timeout, "request body")
        endpoint = FROM_MEMORY.get(self.url)
        if endpoint is not None and self._may_hold():
            self._held, self._held_body = endpoint, b""
            return
        self._start_cycle()

    def _start_cycle(self) -> None:
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()  # the scope, as uvicorn makes it, then this request's head
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers
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
        if not held:  # Trino's bodies mostly arrive in one piece: kept as it is, no copy
            held = self._held_body = body
        elif held.__class__ is bytes:
            held = self._held_body = bytearray(held) + body
        else:
            held += body
        if len(held) > LIMITS.max_body_bytes:  # the app's 413, through ASGI
            self._release()

    def on_message_complete(self) -> None:
        self._disarm()
        if self._held is not None:
            answer = self._answer(self._held, bytes(self._held_body or b""))  # type: ignore[misc]
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
            or self._answer is None
        )

    def _release(self) -> None:
        """Hand a held request to ASGI as it would have gone: cycle, then the body so far."""
        body = bytes(self._held_body or b"")
        self._held = self._held_body = None
        self._start_cycle()
        super().on_body(body)

    def _write_answer(self, answer: bytes) -> None:
        keep_alive = self.parser.should_keep_alive()
        close = b"" if keep_alive else b"connection: close\r\n"
        head = _answer_head(self.server_state.default_headers)
        # one write: head and body
        self.transport.write(b"%s%d\r\n%s\r\n%s" % (head, len(answer), close, answer))
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
        elif self.timeout_keep_alive_task is None:
            # uvicorn's keep-alive timeout as a deadline of the sweep: a timer set and cancelled
            # per answer cost a microsecond, a tenth of the protocol's cost of one
            self._arm(self.timeout_keep_alive, IDLE)
            self._idle_if_waiting()

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
        if self._stage is IDLE:  # closed without a word, as uvicorn closes an idle connection
            if not self.transport.is_closing():
                self.transport.close()
            return
        writing = self.cycle is not None and not self.cycle.response_complete
        if self._stage == "request head" and writing:
            return  # a response is being written: not this deadline's business
        self._refuse(
            408, "Request Timeout", f"{self._stage} not received within {self._stage_seconds:g}s"
        )

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._disarm()
        GATE.release(self)
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app stops waiting for this body
            self.cycle.message_event.set()
        log.debug("HTTP %d to %s: %s", status, self.client, message)
        self.transport.write(_response(status, reason, message))
        self.transport.close()
