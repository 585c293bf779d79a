"""A response that goes through ASGI (a body not seen before, a cache miss) leaves the sidecar in
one write, head and body together, as an answer from memory does: uvicorn alone writes the
head and the body separately, two TCP segments, and Trino's HTTP client then wakes up and
parses twice for one small answer. Driven through the sidecar's own HTTP protocol class, with
a transport that records each write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from devstack.loopback import LoopbackTransport
from sidecar.http import GuardedHttpTools

ANSWER = b'{"result":[0,2]}'


class RecordingTransport(LoopbackTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed_by_server = False  # before the end of the test's connection

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))


async def whole(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


async def streamed(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})  # chunked
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await send({"type": "http.response.body", "body": b"second"})


def exchange(app: Any, raw: bytes) -> RecordingTransport:
    async def run() -> RecordingTransport:
        config = uvicorn.Config(app, http=GuardedHttpTools, lifespan="off", ws="none")
        protocol = GuardedHttpTools(config, ServerState(), {}, asyncio.get_running_loop())
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(raw)
        for _ in range(100):  # bounded: the app task runs on this loop
            if protocol.cycle is not None and protocol.cycle.response_complete:
                break
            await asyncio.sleep(0.01)
        transport.closed_by_server = transport.closed
        protocol.connection_lost(None)
        return transport

    return asyncio.run(run())


def post(path: bytes = b"/v1/data/trino/batch", method: bytes = b"POST") -> bytes:
    body = b'{"input": {}}'
    return (
        b"%s %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d"
        b"\r\n\r\n%s" % (method, path, len(body), body)
    )


def test_a_whole_response_is_one_write() -> None:
    transport = exchange(whole, post())
    [response] = transport.writes
    assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"\r\n\r\n" + ANSWER)
    assert not transport.closed_by_server  # keep-alive


def test_a_streamed_response_sends_its_head_with_the_first_part_then_the_rest() -> None:
    transport = exchange(streamed, post())
    head_and_first, rest = transport.writes
    assert head_and_first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head_and_first.endswith(b"\r\n\r\n5\r\nfirst\r\n")
    assert rest == b"6\r\nsecond\r\n0\r\n\r\n"


@pytest.mark.parametrize("connection", [b"keep-alive", b"close"])
def test_a_response_without_a_body_write_still_sends_its_head(connection: bytes) -> None:
    raw = post(method=b"HEAD").replace(b"host: x", b"host: x\r\nconnection: " + connection)
    transport = exchange(whole, raw)
    [head] = transport.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert transport.closed_by_server == (connection == b"close")


class Remembering:
    """An app that answers from memory (as `SidecarApp` does) when it knows the body, else
    through ASGI, recording the bodies and scopes it saw."""

    def __init__(self, known: bytes) -> None:
        self.known, self.bodies, self.scopes = known, [], []  # type: ignore[var-annotated]

    def answer_from_memory(self, endpoint: str, body: bytes) -> bytes | None:
        self.bodies.append(body)
        return ANSWER if body == self.known else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await whole(scope, receive, send)


def feed(app: Any, pieces: list[bytes], default_headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The writes of the protocol fed `pieces` (a data_received each), answered in turn."""

    async def run() -> list[bytes]:
        config = uvicorn.Config(app, http=GuardedHttpTools, lifespan="off", ws="none")
        config.proxy_headers = False  # the sidecar's own setting: the app is called as it is
        state = ServerState()
        state.default_headers = default_headers
        protocol = GuardedHttpTools(config, state, {}, asyncio.get_running_loop())
        transport = RecordingTransport()
        protocol.connection_made(transport)
        for piece in pieces:
            protocol.data_received(piece)
            for _ in range(100):  # bounded: an ASGI answer runs on this loop
                if protocol.cycle is None or protocol.cycle.response_complete:
                    break
                await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return transport.writes

    return asyncio.run(run())


def test_a_body_in_pieces_is_answered_from_memory_whole() -> None:
    body = b'{"input": {"action": {"operation": "ExecuteQuery"}}}'
    raw = post(b"/v1/data/trino/allow").replace(b'{"input": {}}', body)
    raw = raw.replace(b"content-length: 13", b"content-length: %d" % len(body))
    app = Remembering(body)
    cut = len(raw) - len(body)
    writes = feed(app, [raw[: cut + 5], raw[cut + 5 : cut + 20], raw[cut + 20 :]], [])
    assert app.bodies == [body]
    assert writes == [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (len(ANSWER), ANSWER)
    ]


def test_answers_from_memory_carry_the_default_headers_in_force_the_rest_goes_by_asgi() -> None:
    known = b'{"input": {}}'
    app = Remembering(known)
    first = [(b"date", b"Mon, 07 Dec 2026 14:00:00 GMT"), (b"server", b"uvicorn")]
    second = [(b"date", b"Mon, 07 Dec 2026 14:00:01 GMT"), (b"server", b"uvicorn")]
    unknown = post(b"/v1/data/trino/allow").replace(known, b'{"input": []}')
    writes = feed(app, [post(b"/v1/data/trino/allow")], first)
    writes += feed(app, [post(b"/v1/data/trino/allow"), unknown], second)
    dates = [w.split(b"date: ")[1].split(b"\r\n")[0] for w in writes]
    assert dates == [b"Mon, 07 Dec 2026 14:00:00 GMT"] + [b"Mon, 07 Dec 2026 14:00:01 GMT"] * 2
    assert all(w.endswith(b"\r\n\r\n" + ANSWER) for w in writes)
    # the one memory did not answer went through ASGI, with the scope uvicorn makes of its head
    assert app.bodies == [known, known, b'{"input": []}']
    [scope] = app.scopes
    assert (scope["method"], scope["path"], scope["query_string"]) == (
        "POST",
        "/v1/data/trino/allow",
        b"",
    )
    assert scope["headers"] == [
        (b"host", b"x"),
        (b"content-type", b"application/json"),
        (b"content-length", b"13"),
    ]
