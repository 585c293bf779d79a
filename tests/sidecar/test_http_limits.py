"""The sidecar's HTTP limits (sidecar.yaml `http:`): connections that send nothing, half a head
or half a body are closed with 408; heads and bodies beyond their caps get 431 and 413 without
being buffered whole; too many busy connections or requests in flight get 503; a batch is answered a
chunk at a time and beyond its cap gets 413; a WebSocket upgrade gets a quiet 4xx."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from devstack.configs import make_tree
from devstack.processes import free_port, start_pdp, start_sidecar
from tests.conftest import Stack

LIMITS = """
http:
  maxConnections: 8
  maxInFlight: 2
  headTimeoutSeconds: 1
  bodyTimeoutSeconds: 1
  idleTimeoutSeconds: 2
  maxHeadBytes: 16384
  maxBodyBytes: 200000
  maxBatchItems: 1500
"""
TABLE = {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}


def body(user: str = "alice", operation: str = "SelectFromColumns", **action: object) -> dict:
    if not action:
        action = {"resource": {"table": TABLE}}
    return {
        "input": {
            "context": {"identity": {"user": user, "groups": []}},
            "action": {"operation": operation, **action},
        }
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    tree = make_tree(tmp_path_factory.mktemp("limits"))
    pdp_port, port = free_port(), free_port()
    pdp = start_pdp(tree.pdp_yaml(pdp_port), pdp_port)
    sidecar_yaml = tree.sidecar_yaml(port, pdp_port)
    sidecar_yaml.write_text(sidecar_yaml.read_text() + LIMITS)
    sidecar = start_sidecar(sidecar_yaml, port)
    yield Stack(tree, pdp, sidecar, pdp_port, port)
    sidecar.stop()
    pdp.stop()


def raw(stack: Stack, payload: bytes, wait: float = 5.0) -> bytes:
    """Send `payload` on a fresh connection, then read until the server closes it."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=wait) as sock:
        if payload:
            sock.sendall(payload)
        chunks = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


HEAD = b"POST /v1/data/trino/allow HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        (b"", "request head not received within 1s"),
        (HEAD, "request head not received within 1s"),
        (HEAD + b'content-length: 1000\r\n\r\n{"input"', "request body not received within 1s"),
    ],
    ids=["nothing", "half a head", "half a body"],
)
def test_a_connection_that_stalls_is_answered_408_and_closed(stack, payload, what):
    start = time.monotonic()
    answer = raw(stack, payload)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert what.encode() in answer
    assert time.monotonic() - start < 4  # closed by the server, not by our read timeout


def check(sock: socket.socket) -> bytes:
    """One check on a kept-alive connection (its answer whole: a small one, in one read)."""
    payload = orjson.dumps(body())
    sock.sendall(HEAD + b"content-length: %d\r\n\r\n" % len(payload) + payload)
    return sock.recv(65536)


def test_a_keep_alive_connection_lives_while_used_and_is_closed_quietly_once_idle(stack):
    """Checks answered from memory (the repeated ones) keep the connection as uvicorn's own
    keep-alive does: open while checks come within `idleTimeoutSeconds` of each other, closed
    without a response after that long idle."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as sock:
        for _ in range(8):  # 4 s of checks, each within the 2 s idle timeout of the last
            time.sleep(0.5)
            assert check(sock).endswith(b'{"result":true}')
        idle = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server, nothing said
        assert 1.9 < time.monotonic() - idle < 4


def test_an_oversized_head_is_refused_before_it_is_buffered(stack):
    sent = HEAD + b"x-big: " + b"a" * 100_000
    answer = raw(stack, sent)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"request head larger than 16384 bytes" in answer


def test_an_oversized_body_is_refused_by_its_declared_length_or_as_it_arrives(stack):
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        declared = client.post("/v1/data/trino/allow", content=b"x" * 300_000)
        assert declared.status_code == 413
        assert "body of 300000 bytes; the limit is 200000" in declared.json()["error"]

        def chunks() -> Iterator[bytes]:
            for _ in range(30):
                yield b"x" * 10_000

        streamed = client.post("/v1/data/trino/allow", content=chunks())
        assert streamed.status_code == 413
        assert "body larger than 200000 bytes" in streamed.json()["error"]
        # and the worker still answers
        assert client.post("/v1/data/trino/allow", json=body()).json() == {"result": True}


def test_a_body_that_arrives_in_pieces_is_answered_whole(stack):
    whole = orjson.dumps(body())

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(whole), 16):
            yield whole[start : start + 16]
            time.sleep(0.01)  # separate TCP segments: several ASGI messages

    with httpx.Client(base_url=stack.url, timeout=10) as client:
        answer = client.post("/v1/data/trino/allow", content=pieces())
    assert answer.status_code == 200 and answer.json() == {"result": True}


def test_connections_beyond_the_cap_get_503_and_the_sidecar_keeps_answering(stack):
    """None of the 8 connections is idle (each is sending a head), so none makes room for a
    9th; they come from two addresses, 4 each, as one address may hold half the cap
    (test_connection_caps.py has the rest)."""
    busy = []
    try:
        for client in ("127.0.0.2", "127.0.0.3"):
            for _ in range(4):
                address = ("127.0.0.1", stack.port)
                sock = socket.create_connection(address, source_address=(client, 0))
                busy.append(sock)
                sock.sendall(HEAD)
        answer = raw(stack, b"")
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"too many open connections" in answer
    finally:
        for sock in busy:
            sock.close()
    deadline = time.monotonic() + 5
    while True:  # the server notices the closed sockets
        try:
            ok = httpx.post(f"{stack.url}/v1/data/trino/allow", json=body(), timeout=5)
            if ok.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert ok.json() == {"result": True}


def test_requests_in_flight_beyond_the_cap_get_503(stack):
    os.kill(stack.pdp.popen.pid, signal.SIGSTOP)  # new users' checks now wait on the PDP
    try:
        results: list[int] = []

        def check(user: str) -> None:
            response = httpx.post(f"{stack.url}/v1/data/trino/allow", json=body(user), timeout=10)
            results.append(response.status_code)

        waiting = [threading.Thread(target=check, args=(f"new{i}",)) for i in range(2)]
        for thread in waiting:
            thread.start()
        time.sleep(0.5)
        refused = httpx.post(f"{stack.url}/v1/data/trino/allow", json=body("new3"), timeout=10)
        assert refused.status_code == 503
        assert "more than 2 requests in flight" in refused.json()["error"]
    finally:
        os.kill(stack.pdp.popen.pid, signal.SIGCONT)
    for thread in waiting:
        thread.join(10)
    assert results == [200, 200]


def filter_tables(n: int) -> dict:
    items = [
        {"table": {"catalogName": "hive", "schemaName": "sales", "tableName": f"t{i}"}}
        for i in range(n)
    ]
    items[7] = {"table": TABLE}  # registered, and alice may read it
    items[n - 1] = {"table": {**TABLE, "tableName": "scratch"}}  # registered, inactive
    return body("carol", "FilterTables", filterResources=items)


def test_a_large_batch_is_answered_in_full_and_an_oversized_one_gets_413(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        answer = client.post("/v1/data/trino/batch", json=filter_tables(1400)).json()["result"]
        # carol: unregistered tables are readable, orders is a data source she is not granted
        assert answer == [i for i in range(1400) if i != 7]
        alice = filter_tables(1400)
        alice["input"]["context"]["identity"]["user"] = "alice"
        assert client.post("/v1/data/trino/batch", json=alice).json()["result"] == list(range(1400))
        too_many = client.post("/v1/data/trino/batch", json=filter_tables(1501))
        assert too_many.status_code == 413
        assert "1501 items; the limit is 1500" in too_many.json()["error"]


def test_a_column_mask_batch_beyond_the_item_cap_gets_413(stack):
    columns = [
        {"column": {**TABLE, "columnName": f"c{i}", "columnType": "varchar"}} for i in range(1501)
    ]
    too_many = body("alice", "GetColumnMask", filterResources=columns)
    answer = httpx.post(f"{stack.url}/v1/data/trino/batchColumnMasks", json=too_many, timeout=30)
    assert answer.status_code == 413
    assert "1501 items; the limit is 1500" in answer.json()["error"]
    within = body("alice", "GetColumnMask", filterResources=columns[:1500])
    answer = httpx.post(f"{stack.url}/v1/data/trino/batchColumnMasks", json=within, timeout=30)
    assert answer.status_code == 200 and len(answer.json()["result"]) == 0  # no data policies


def test_a_websocket_upgrade_gets_a_quiet_4xx(stack):
    before = stack.sidecar.output()
    response = httpx.get(
        f"{stack.url}/v1/data/trino/allow",
        headers={
            "connection": "upgrade",
            "upgrade": "websocket",
            "sec-websocket-version": "13",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
        timeout=5,
    )
    assert 400 <= response.status_code < 500
    added = stack.sidecar.output()[len(before) :]
    assert "ERROR" not in added and "Unsupported upgrade" not in added
