"""The sidecar and a PDP that goes away and comes back (issue 20, item 6): real processes, the
PDP killed by its PID (SIGKILL) or frozen (SIGSTOP), then back on the same port.

Liveness bounds, not performance figures: the sidecar's PDP timeout is 2 s (`timeoutSeconds`),
so "answered within 2 s" means the answer did not wait for it."""

from __future__ import annotations

import copy
import os
import signal
import time

import httpx

from devstack.processes import start_pdp
from tests.conftest import start_stack
from tests.sidecar.test_revocation import BODY
from tests.support.waiting import wait_for

TIMEOUT = 2.0  # the sidecar's timeoutSeconds (devstack.configs)


def check(user: str, operation: str = "SelectFromColumns") -> dict:
    body = copy.deepcopy(BODY)
    body["input"]["context"]["identity"]["user"] = user
    body["input"]["action"]["operation"] = operation
    return body


def timed(client: httpx.Client, body: dict) -> tuple[bool, float]:
    start = time.monotonic()
    result = client.post("/v1/data/trino/allow", json=body).json()["result"]
    return result, time.monotonic() - start


def connected(client: httpx.Client) -> bool:
    return client.get("/health").json()["pdp"] == "connected"


def test_after_a_kill_the_sidecar_is_back_as_soon_as_the_pdp_serves(tmp_path):
    stack = start_stack(tmp_path)
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            assert timed(client, check("alice"))[0] is True
            os.kill(stack.pdp.popen.pid, signal.SIGKILL)
            stack.pdp.popen.wait(10)
            wait_for(lambda: not connected(client), 10, "the sidecar noticing")
            # away long enough for a reconnect backoff to grow (gRPC's own reaches seconds)
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                allowed, took = timed(client, check(f"fresh-{time.monotonic_ns()}"))
                assert allowed is False  # nobody's grants are known: fail closed...
                assert took < TIMEOUT  # ...at once, the PDP being known to be away
                time.sleep(0.5)
            stack.pdp = start_pdp(stack.tree.root / "pdp.yaml", stack.pdp_port)
            serving = time.monotonic()
            # bob was never asked about: only the PDP can answer for him
            write = check("bob", "InsertIntoTable")
            wait_for(lambda: timed(client, write)[0] is True, 2 * TIMEOUT, "bob answered")
            print(f"bob answered {time.monotonic() - serving:.2f} s after the PDP served")
            assert time.monotonic() - serving < TIMEOUT
            assert connected(client)
    finally:
        stack.sidecar.stop()
        stack.pdp.stop()


def test_while_the_pdp_is_frozen_uncached_checks_are_denied_at_once(tmp_path):
    stack = start_stack(tmp_path)
    pid = stack.pdp.popen.pid
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            assert timed(client, check("alice"))[0] is True
            os.kill(pid, signal.SIGSTOP)  # the connection stays open; nothing answers
            wait_for(lambda: not connected(client), 15, "the sidecar noticing the silence")
            for attempt in range(5):
                allowed, took = timed(client, check(f"fresh-{attempt}"))
                assert allowed is False
                assert took < TIMEOUT, f"a denial waited {took:.2f} s for the PDP"
            assert timed(client, check("alice"))[0] is True  # cached: served meanwhile
            os.kill(pid, signal.SIGCONT)
            write = check("bob", "InsertIntoTable")
            wait_for(lambda: timed(client, write)[0] is True, 15, "bob answered once it thaws")
    finally:
        os.kill(pid, signal.SIGCONT)
        stack.sidecar.stop()
        stack.pdp.stop()
