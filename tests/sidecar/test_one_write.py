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

from sidecar.http import GuardedHttpTools
from tests.support.transport import LoopbackTransport

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
