"""Batches take turns (sidecar/turns.py): a single check sent while many batches are being
decided is answered before (nearly all of) those in progress, where it used to wait for them.
The batches are misses (schemas never asked about: a FilterTables batch of a user whose view is
cached is answered by set lookups, too fast to need turns), so each costs real work, a decision
per item; they are sent on their own connections before the check, and the check is answered
first."""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.conftest import Stack, start_stack

BATCHES, ITEMS = 40, 500


def request(endpoint: str, document: dict) -> bytes:
    body = orjson.dumps(document)
    return (
        b"POST /v1/data/trino/%s HTTP/1.1\r\nhost: sidecar\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (endpoint.encode(), len(body), body)
    )


def body(user: str, operation: str, **action: object) -> dict:
    return {
        "input": {
            "context": {"identity": {"user": user, "groups": []}},
            "action": {"operation": operation, **action},
        }
    }


def filter_schemas(batch: int) -> bytes:
    schemas = [
        {"schema": {"catalogName": "hive", "schemaName": f"b{batch}_s{i}"}} for i in range(ITEMS)
    ]
    return request("batch", body("carol", "FilterSchemas", filterResources=schemas))


CHECK = request(
    "allow",
    body(
        "alice",
        "SelectFromColumns",
        resource={"table": {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}},
    ),
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    started = start_stack(tmp_path_factory.mktemp("turns"))
    yield started
    started.sidecar.stop()
    started.pdp.stop()


def connect(stack: Stack) -> socket.socket:
    return socket.create_connection(("127.0.0.1", stack.port), timeout=30)


def answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, content = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    while len(content) < length:
        content += sock.recv(65536)
    return head, content


def test_a_check_sent_while_batches_are_decided_is_answered_before_them(stack):
    with connect(stack) as warm:  # alice's check is then answered from memory
        for _ in range(2):
            warm.sendall(CHECK)
            assert answer(warm)[1] == b'{"result":true}'
        warm.sendall(filter_schemas(-1))  # and carol's view is fetched from the PDP
        assert answer(warm)[1] == orjson.dumps({"result": list(range(ITEMS))})

    batches = [connect(stack) for _ in range(BATCHES)]
    try:
        for batch, sock in enumerate(batches):
            sock.sendall(filter_schemas(batch))
        time.sleep(0.05)  # the sidecar is at work on them (they take far longer: 20,000 misses)
        with connect(stack) as check:
            done_before, _, _ = select.select(batches, [], [], 0)
            check.sendall(CHECK)
            assert answer(check)[1] == b'{"result":true}'
            done_after, _, _ = select.select(batches, [], [], 0)
        in_progress = BATCHES - len(done_before)
        assert in_progress >= BATCHES / 2  # most were in progress when the check was sent
        # and the check did not wait for them (one near its end may finish meanwhile)
        finished = len(done_after) - len(done_before)
        assert finished <= in_progress // 10, f"{finished} of {in_progress} finished first"
        for sock in batches:
            head, content = answer(sock)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert orjson.loads(content) == {"result": list(range(ITEMS))}
    finally:
        for sock in batches:
            sock.close()
