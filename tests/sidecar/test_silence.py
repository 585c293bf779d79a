"""The staleness bound holds when the PDP falls silent without the connection breaking: a
frozen PDP process (SIGSTOP) or a network that drops every packet. The watch hears a heartbeat
every second; without one for three, the PDP counts as lost from the last word heard, and past
`cache.maxStaleSeconds` cached answers are dropped. /health tells the truth meanwhile."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from devstack.configs import make_tree
from devstack.processes import Process, free_port, start_pdp, start_sidecar
from pdp.api import HEARTBEAT_SECONDS, SILENCE_SECONDS
from tests.sidecar.test_revocation import BODY
from tests.support.netproxy import SilentProxy

MAX_STALE = 4.0
# The bound is counted from the last heartbeat, which came at most HEARTBEAT_SECONDS before the
# silence began; the sidecar checks four times a second. Allow scheduling noise on 2 cores.
LATEST_DENIAL = MAX_STALE + HEARTBEAT_SECONDS + 1.5


def _pdp_state(client: httpx.Client) -> str:
    return client.get("/health").json()["pdp"]


def _allowed(client: httpx.Client) -> bool:
    return client.post("/v1/data/trino/allow", json=BODY).json()["result"]


def _observe(client: httpx.Client, limit: float) -> tuple[float, float]:
    """Seconds until /health said disconnected, and until the cached allow became a deny."""
    start = time.monotonic()
    disconnected = denied = None
    while time.monotonic() - start < limit and (disconnected is None or denied is None):
        now = time.monotonic() - start
        if disconnected is None and _pdp_state(client) == "disconnected":
            disconnected = now
        if denied is None and not _allowed(client):
            denied = now
        time.sleep(0.05)
    assert disconnected is not None, "/health kept saying connected"
    assert denied is not None, f"cached allow still served after {limit}s"
    return disconnected, denied


@contextmanager
def _stack(tmp_path, via_proxy: bool) -> Iterator[tuple[Process, SilentProxy | None, str]]:
    tree = make_tree(tmp_path)
    pdp_port, port = free_port(), free_port()
    pdp = start_pdp(tree.pdp_yaml(pdp_port), pdp_port)
    proxy = SilentProxy(pdp_port) if via_proxy else None
    target = proxy.port if proxy else pdp_port
    try:
        sidecar = start_sidecar(tree.sidecar_yaml(port, target, MAX_STALE), port)
        try:
            yield pdp, proxy, f"http://127.0.0.1:{port}"
        finally:
            sidecar.stop()
    finally:
        os.kill(pdp.popen.pid, signal.SIGCONT)
        pdp.stop()
        if proxy:
            proxy.close()


def _silence_then_recover(url: str, silence: Callable[[], None], resume: Callable[[], None]):
    with httpx.Client(base_url=url, timeout=10) as client:
        assert _allowed(client)  # alice's answer is now cached
        silence()
        try:
            disconnected, denied = _observe(client, limit=LATEST_DENIAL + 3)
        finally:
            resume()
        assert disconnected <= SILENCE_SECONDS + HEARTBEAT_SECONDS + 1.0
        assert MAX_STALE - HEARTBEAT_SECONDS - 0.5 <= denied <= LATEST_DENIAL
        deadline = time.monotonic() + 15
        while not (_pdp_state(client) == "connected" and _allowed(client)):
            assert time.monotonic() < deadline, "sidecar did not recover"
            time.sleep(0.1)


def test_frozen_pdp(tmp_path) -> None:
    with _stack(tmp_path, via_proxy=False) as (pdp, _, url):
        pid = pdp.popen.pid
        _silence_then_recover(
            url, lambda: os.kill(pid, signal.SIGSTOP), lambda: os.kill(pid, signal.SIGCONT)
        )


def test_network_that_stops_forwarding(tmp_path) -> None:
    with _stack(tmp_path, via_proxy=True) as (_, proxy, url):
        assert proxy is not None

        def silence() -> None:
            proxy.silent = True

        def resume() -> None:
            proxy.silent = False

        _silence_then_recover(url, silence, resume)


def test_a_quiet_pdp_is_not_a_lost_one(tmp_path) -> None:
    # No policy change for several heartbeats and several times the silence limit: still
    # connected, still answering from cache.
    with _stack(tmp_path, via_proxy=False) as (_, _, url), httpx.Client(base_url=url) as client:
        assert _allowed(client)
        end = time.monotonic() + 2 * SILENCE_SECONDS
        while time.monotonic() < end:
            assert _pdp_state(client) == "connected"
            time.sleep(0.25)
        assert _allowed(client)
