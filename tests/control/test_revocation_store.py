"""Revocation through the store reaches every sidecar without waiting for a poll: the PDP
polls the store every 30 s here, so a deny within the bound came by the commit's notification
(PostgreSQL: LISTEN/NOTIFY; SQLite: the write made in the PDP's own process), a new snapshot and
the revision stream. One source per test: an admin API change (a table deactivated) and object
sync (a table gone from the platform)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.processes import Process, free_port, start_sidecar
from devstack.replica import REGISTER, Replica, write_world
from tests.control.test_control_e2e import body

SLOW_POLL = "control: {storePollSeconds: 30}\n"
BOUND = 10.0  # seconds: generous, never a timing assertion
WORLD = {"cat": {"sales": {"orders": [["id", "bigint"]], "items": [["id", "bigint"]]}}}


class Deployment:
    """One PDP over PostgreSQL, `hc` registered with its tables active, two sidecars."""

    def __init__(self, root: Path, store_url: str) -> None:
        self.world = root / "world.json"
        write_world(self.world, WORLD)
        self.pdp = Replica(root, store_url, self.world, "a", SLOW_POLL)
        self.sidecars: list[Process] = []
        self.clients: list[httpx.Client] = []
        answer = self.pdp.api.post(
            "/data/connection", json={**REGISTER, "settings": {"activateNewChildren": True}}
        )
        assert answer.status_code == 201, answer.text
        assert self.pdp.wait_job(answer.json()["jobId"])["state"] == "completed"
        for _ in range(2):
            port = free_port()
            self.sidecars.append(
                start_sidecar(self.pdp.tree.sidecar_yaml(port, self.pdp.grpc_port), port)
            )
            self.clients.append(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5))

    def answers(self, request: dict) -> list[bool]:
        return [c.post("/v1/data/trino/allow", json=request).json()["result"] for c in self.clients]

    def allowed_everywhere(self, request: dict) -> None:
        """Allowed at both sidecars (waiting, bounded, for the registration to reach them)."""
        deadline = time.monotonic() + BOUND
        while self.answers(request) != [True, True]:
            assert time.monotonic() < deadline, "not allowed before the change"
            time.sleep(0.05)

    def denied_everywhere(self, request: dict) -> None:
        """Denied at both sidecars within BOUND, and never allowed again."""
        deadline = time.monotonic() + BOUND
        while any(self.answers(request)):
            assert time.monotonic() < deadline, f"still allowed {BOUND}s after the change"
            time.sleep(0.02)
        for _ in range(20):
            assert self.answers(request) == [False, False]

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for sidecar in self.sidecars:
            sidecar.stop()
        self.pdp.stop()


@pytest.fixture(params=["postgresql", "sqlite"])
def deployment(request, tmp_path, new_database) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path, new_database(request.param))
    yield deployment
    deployment.stop()


def test_deactivating_a_table_through_the_admin_api_revokes_at_every_sidecar(deployment):
    items = body("cat", "sales", "items")
    deployment.allowed_everywhere(items)
    answer = deployment.pdp.api.put("/data/settings/hc/cat/sales/items", json={"isActive": False})
    assert answer.status_code == 200, answer.text  # committed
    deployment.denied_everywhere(items)
    # the other table of the connection is untouched
    assert deployment.answers(body("cat", "sales", "orders")) == [True, True]


def test_object_sync_finding_a_table_gone_revokes_at_every_sidecar(deployment):
    orders = body("cat", "sales", "orders")
    deployment.allowed_everywhere(orders)
    write_world(deployment.world, {"cat": {"sales": {"items": [["id", "bigint"]]}}})
    job = deployment.pdp.sync("hc")
    assert job["state"] == "completed" and job["stats"]["table.missing"] == 1
    deployment.denied_everywhere(orders)
    assert deployment.answers(body("cat", "sales", "items")) == [True, True]
