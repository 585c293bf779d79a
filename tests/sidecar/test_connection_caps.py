"""The sidecar's connection caps fit its open-files limit: under a limit of 256 a worker serves
at most 256 - 64 connections (64 kept for the PDP connection and its files) and half of them
per client address. At the cap an idle keep-alive connection is closed, longest idle first, to
make room for a new one, so that idle connections (each refreshed by a check now and then) never
lock fresh checks out; beyond a client's cap, or with nothing idle to close, a new connection
gets 503 at once. Caps reached are logged once, not per connection, and counted in /metrics.
Client addresses are distinct loopback addresses (127.0.0.2, ...)."""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from devstack.configs import make_tree
from devstack.processes import free_port, start_pdp, start_sidecar
from pdp.config.errors import ConfigError
from sidecar.config import load_sidecar_config
from tests.conftest import Stack

CAP, PER_CLIENT = 256 - 64, (256 - 64) // 2
CHECK = orjson.dumps(
    {
        "input": {
            "context": {"identity": {"user": "alice", "groups": []}},
            "action": {
                "operation": "SelectFromColumns",
                "resource": {
                    "table": {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}
                },
            },
        }
    }
)
REQUEST = (
    b"POST /v1/data/trino/allow HTTP/1.1\r\nhost: sidecar\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(CHECK), CHECK)
)


def start(tmp_path_factory, name: str, open_files: tuple[int, int]) -> Stack:
    tree = make_tree(tmp_path_factory.mktemp(name))
    pdp_port, port = free_port(), free_port()
    pdp = start_pdp(tree.pdp_yaml(pdp_port), pdp_port)
    sidecar = start_sidecar(tree.sidecar_yaml(port, pdp_port), port, open_files=open_files)
    return Stack(tree, pdp, sidecar, pdp_port, port)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """One worker (tests/support/configs.py) whose soft and hard open-files limits are 256."""
    started = start(tmp_path_factory, "caps", (256, 256))
    yield started
    started.sidecar.stop()
    started.pdp.stop()


def connect(stack: Stack, client: str) -> socket.socket:
    address = ("127.0.0.1", stack.port)
    return socket.create_connection(address, timeout=5, source_address=(client, 0))


def answer(sock: socket.socket) -> bytes:
    """One response read whole (head and content-length body), or what came before a close."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def check(sock: socket.socket) -> bytes:
    sock.sendall(REQUEST)
    return answer(sock)


def keep_alive_sockets(stack: Stack, client: str, count: int) -> list[socket.socket]:
    """`count` connections from `client`, each answered one check and kept open, idle."""
    sockets = []
    for _ in range(count):
        sock = connect(stack, client)
        sockets.append(sock)
        response = check(sock)
        assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b'{"result":true}')
    return sockets


def fresh_check(stack: Stack, client: str = "127.0.0.1") -> bytes:
    with connect(stack, client) as sock:
        return check(sock)


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def test_the_caps_follow_the_open_files_limit_and_the_log_says_so(stack):
    output = stack.sidecar.output()
    assert "http.maxConnections: 1000 does not fit the open-files limit of 256" in output
    assert f"at most {CAP} connections per worker" in output


def test_idle_keep_alive_connections_beyond_the_open_files_limit_do_not_lock_fresh_checks_out(
    stack,
):
    clients = [f"127.0.0.{i}" for i in range(2, 6)]
    held: list[socket.socket] = []
    try:
        for client in clients:  # 4 x 75 = 300 > 256: every one of them answered
            held += keep_alive_sockets(stack, client, 75)
        for _ in range(50):
            response = fresh_check(stack)
            assert response.startswith(b"HTTP/1.1 200 "), response
        # the ones closed to make room were the longest idle: the first ones opened
        closed = _closed_by_server(held)
        assert len(closed) >= len(held) - CAP
        assert set(closed) <= set(held[: len(closed) + 5])
    finally:
        close_all(held)


def test_a_client_beyond_its_cap_gets_503_at_once_and_others_are_still_served(stack):
    held = keep_alive_sockets(stack, "127.0.0.6", PER_CLIENT)
    try:
        start = time.monotonic()
        refused = fresh_check(stack, "127.0.0.6")
        assert refused.startswith(b"HTTP/1.1 503 "), refused
        assert b"more than %d open connections from 127.0.0.6" % PER_CLIENT in refused
        assert time.monotonic() - start < 4  # answered, not left to time out
        assert fresh_check(stack, "127.0.0.7").startswith(b"HTTP/1.1 200 ")
        assert check(held[0]).startswith(b"HTTP/1.1 200 ")  # its open connections still work
    finally:
        close_all(held)


def test_caps_reached_are_logged_once_and_counted_in_metrics(stack):
    # the tests above reached both caps many times, within a minute
    assert stack.sidecar.output().count("connection caps reached") == 1
    metrics = httpx.get(f"{stack.url}/metrics", timeout=5).text
    capped = "pdp_sidecar_connections_capped_total"
    evicted = _metric(metrics, f'{capped}{{outcome="evicted"}}')
    per_client = _metric(metrics, f'{capped}{{outcome="refused_per_client"}}')
    assert evicted >= 4 * 75 - CAP and per_client >= 1
    assert re.search(rf"pdp_sidecar_max_connections{{worker=\"\d+\"}} {CAP}\.0", metrics)


def test_a_soft_limit_below_the_hard_one_is_raised_at_start(tmp_path_factory):
    raised = start(tmp_path_factory, "raised", (256, 4096))
    try:
        limits = Path(f"/proc/{raised.sidecar.popen.pid}/limits").read_text()  # the one worker
        assert re.search(r"Max open files\s+4096\s+4096", limits), limits
        assert "does not fit the open-files limit" not in raised.sidecar.output()
        metrics = httpx.get(f"{raised.url}/metrics", timeout=5).text
        assert re.search(r"pdp_sidecar_max_connections{worker=\"\d+\"} 1000\.0", metrics)
    finally:
        raised.sidecar.stop()
        raised.pdp.stop()


def _closed_by_server(sockets: list[socket.socket]) -> list[socket.socket]:
    closed, _, _ = select.select(sockets, [], [], 1.0)  # a closed one reads as EOF at once
    time.sleep(0.2)
    closed, _, _ = select.select(sockets, [], [], 0)
    return [sock for sock in sockets if sock in closed and _at_eof(sock)]


def _at_eof(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def _metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name))
    return float(line.split()[-1])


@pytest.mark.parametrize(
    ("http", "per_client", "error"),
    [
        ("", None, None),  # absent: half the worker's cap, decided at start
        ("http: {maxConnectionsPerClient: 40}", 40, None),
        ("http: {maxConnectionsPerClient: 0}", None, "expected a positive number, got 0"),
        ("http: {maxConnectionsPerClient: 2.5}", None, "expected a whole number, got 2.5"),
    ],
)
def test_max_connections_per_client_in_sidecar_yaml(tmp_path, http, per_client, error):
    path = tmp_path / "sidecar.yaml"
    path.write_text(http + "\npdp: {auth: none}\n")
    if error is None:
        assert load_sidecar_config(path).http.max_connections_per_client == per_client
    else:
        with pytest.raises(
            ConfigError, match=f"sidecar.yaml:1: http.maxConnectionsPerClient: {error}"
        ):
            load_sidecar_config(path)
