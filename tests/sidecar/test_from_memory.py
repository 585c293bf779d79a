"""Answers from memory in the HTTP protocol (sidecar/http.py): a body seen before whose
decisions are cached is answered before any ASGI work. Over real HTTP to a real sidecar, such
answers are the same as the ones they repeat, in the order the requests came, on connections
that stay usable."""

from __future__ import annotations

import socket
import time

import httpx
import orjson

from tests.support.opa import select_orders

PATH = b"/v1/data/trino/allow"


def check(user: str, query: int) -> bytes:
    trino, query_id = {"trinoVersion": "484"}, f"20261130_000000_{query:05d}_abcde"
    return orjson.dumps(select_orders(user, softwareStack=trino, queryId=query_id))


def request(body: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return (
        b"POST %s %s\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % (PATH, version, len(body))
    ) + body


def responses(sock: socket.socket, count: int, seconds: float = 5.0) -> list[tuple[bytes, bytes]]:
    """`count` (head, body) pairs read off `sock` (bounded in time)."""
    data, found = b"", []
    deadline = time.monotonic() + seconds
    while len(found) < count and time.monotonic() < deadline:
        head, separator, rest = data.partition(b"\r\n\r\n")
        if separator:
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) >= length:
                found.append((head, rest[:length]))
                data = rest[length:]
                continue
        data += sock.recv(65536)
    return found


def connect(stack: object) -> socket.socket:
    return socket.create_connection(("127.0.0.1", stack.port), timeout=5)  # type: ignore[attr-defined]


def header_names(head: bytes) -> list[bytes]:
    return sorted(line.split(b":")[0].lower() for line in head.split(b"\r\n")[1:])


def test_a_repeated_check_gets_the_same_answer_and_headers_on_the_same_connection(stack_factory):
    stack = stack_factory()
    with connect(stack) as sock:
        first = None
        for query in range(50):  # a new queryId every time, as Trino sends
            sock.sendall(request(check("alice", query)))
            [(head, body)] = responses(sock, 1)
            assert head.startswith(b"HTTP/1.1 200 ") and body == b'{"result":true}'
            first = first or head
            assert header_names(head) == header_names(first)


def test_pipelined_checks_are_answered_in_the_order_they_came(stack_factory):
    stack = stack_factory()
    with connect(stack) as sock:  # learn both bodies once
        for user in ("alice", "carol"):
            sock.sendall(request(check(user, 1)))
            responses(sock, 1)
    users = ["alice", "carol", "alice", "dave", "carol", "alice"]  # dave: never seen before
    with connect(stack) as sock:
        sock.sendall(b"".join(request(check(user, 2 + i)) for i, user in enumerate(users)))
        answers = [body for _, body in responses(sock, len(users))]
    assert answers == [
        b'{"result":true}' if user == "alice" else b'{"result":false}' for user in users
    ]


def test_an_http_1_0_check_is_answered_and_its_connection_closed(stack_factory):
    stack = stack_factory()
    with connect(stack) as sock:
        sock.sendall(request(check("alice", 1)))
        responses(sock, 1)
    with connect(stack) as sock:
        sock.sendall(request(check("alice", 2), b"HTTP/1.0"))
        [(head, body)] = responses(sock, 1)
        assert body == b'{"result":true}' and b"connection: close" in head.lower()
        assert sock.recv(1024) == b""  # closed by the sidecar


def test_answers_from_memory_are_counted_like_the_others(stack_factory):
    stack = stack_factory()
    with connect(stack) as sock:
        for query in range(20):
            sock.sendall(request(check("alice", query)))
            responses(sock, 1)
    metrics = httpx.get(f"{stack.url}/metrics", timeout=5).text
    allow = [
        line for line in metrics.splitlines() if 'endpoint="allow"' in line and "_count" in line
    ]
    assert allow and float(allow[0].split()[-1]) >= 20
    selected = [
        line
        for line in metrics.splitlines()
        if 'operation="SelectFromColumns",result="allow"' in line
    ]
    assert selected and float(selected[0].split()[-1]) >= 20


def filter_tables(user: str, query: int) -> bytes:
    tables = [
        {"table": {"catalogName": "hive", "schemaName": "sales", "tableName": name}}
        for name in ("orders", "orders")
    ]
    context = {
        "identity": {"user": user, "groups": []},
        "queryId": f"20261207_000000_{query:05d}_abcde",
    }
    action = {"operation": "FilterTables", "filterResources": tables}
    return orjson.dumps({"input": {"context": context, "action": action}})


def test_a_repeated_batch_gets_the_same_answer_each_time(stack_factory):
    """The first time from the decision core, then from the cached decisions, then as a whole
    answer kept for the body (sidecar/answers.py `cached_batch`): the same answer."""
    stack = stack_factory()
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        answers = {
            user: [
                client.post("/v1/data/trino/batch", content=filter_tables(user, q)).json()
                for q in range(4)
            ]
            for user in ("alice", "carol")
        }
    assert answers["alice"] == [{"result": [0, 1]}] * 4
    assert answers["carol"] == [{"result": []}] * 4
