"""No policy downtime through the real Trino (spec §8.3): the run's PDP is swapped for one with a
store and the admin API (the fake platform behind the crawler seam, listing what the Trino
memory catalog holds); carol, whom only a policy on the legacy data source
`legacy.memory.sales.customers` lets read that table, queries it through Trino after every
step of the upgrade (legacy registration, start, validate, upgrade, partial, resolve, finalize,
the first sync) and is never refused. The run's PDP and policies are put back afterwards."""

from __future__ import annotations

import json
import sys
import time

import httpx

from devstack.processes import Process, free_port
from tests.e2e.conftest import POLICIES, eventually

LEGACY_POLICY = """
  - name: legacy-customers
    access: READ
    who: {users: [carol]}
    what: {dataSources: [legacy.memory.sales.customers]}
"""
WORLD = {
    "memory": {
        "sales": {
            "orders": [["id", "integer"]],
            "customers": [["id", "integer"], ["name", "varchar"]],
            "scratch": [["x", "integer"]],
        },
        "hr": {"salaries": [["name", "varchar"]]},
    }
}
FAKE_PDP = (sys.executable, "-m", "devstack.fakepdp")
GOVERNOR = "  gwen: {permissions: [GOVERNANCE, APPLICATION_ADMIN]}\n"
QUERY = "SELECT count(*) FROM memory.sales.customers"


def test_no_policy_downtime_through_trino(e2e, tmp_path):
    root = e2e.tree.root
    world = tmp_path / "world.json"
    world.write_text(json.dumps(WORLD))
    admin_port = free_port()
    config = root / "pdp-upgrade.yaml"
    config.write_text(
        (root / "pdp.yaml").read_text()
        + f"store: sqlite:///{tmp_path}/store.db\n"
        # the cluster rules: the Trino system user must match their immuta.user.admin
        + f"clusterProperties: {e2e.tree.properties.name}\n"
        + f"admin: {{listen: '127.0.0.1:{admin_port}', trustUserHeader: true}}\n"
        + "control: {secretReferences: [TRINO_PASSWORD]}\n"  # allowed by name, operator-set
    )
    users = (root / "users.yaml").read_text()
    (root / "users.yaml").write_text(
        users + "  gwen: {permissions: [GOVERNANCE, APPLICATION_ADMIN]}\n"
    )
    e2e.write_policies(POLICIES + LEGACY_POLICY)
    e2e.pdp.stop()
    pdp = Process(
        [*FAKE_PDP, "--config", str(config), "--world", str(world), "--tick", "0.5"],
        root / "pdp-upgrade.log",
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{admin_port}",
        headers={"X-Pdp-User": "gwen"},
        timeout=30,
    )
    try:

        def ready() -> bool:
            try:
                return api.get("/health").status_code == 200
            except httpx.HTTPError:
                return False

        pdp.wait_until(ready, timeout=60)
        e2e.denied("carol", QUERY)  # nothing names the legacy connection yet
        answer = api.post(
            "/dataSource",
            headers={"X-Pdp-User": "gwen"},
            json={
                "connection": {
                    "name": "legacy",
                    "technology": "trino",
                    "endpoint": {"host": "127.0.0.1"},
                    "credentials": {"username": "svc_pdp", "passwordEnv": "TRINO_PASSWORD"},
                },
                "database": "memory",
                "schema": "sales",
                "table": "customers",
            },
        )
        assert answer.status_code == 201, answer.text
        eventually(lambda: _allowed(e2e), 20)

        def step(name: str, method: str, url: str, body: dict | None = None) -> dict:
            done = api.request(method, url, json=body)
            assert done.status_code < 300, (name, done.text)
            time.sleep(0.6)
            assert e2e.query("carol", QUERY) == [[2]], name
            return done.json()

        step("start", "POST", "/data/upgrade/legacy/start", {"displayName": "up"})
        step("validate", "POST", "/data/upgrade/legacy/validate", {})
        job = step("upgrade", "POST", "/data/upgrade/legacy/upgrade", {"confirm": True})
        deadline = time.monotonic() + 60
        while api.get(f"/jobs/{job['jobId']}").json()["state"] not in ("completed", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        status = step("upgraded", "GET", "/data/upgrade/legacy")
        assert status["state"] == "upgraded" and status["counts"]["matched"] == 1
        step("finalize", "POST", "/data/upgrade/legacy/finalize")
        crawl = api.post("/data/crawl/up", json={})
        assert crawl.status_code == 202, crawl.text
        time.sleep(2)
        assert e2e.query("carol", QUERY) == [[2]]
        e2e.denied("carol", "SELECT count(*) FROM memory.sales.orders")  # nothing else widened
    finally:
        api.close()
        pdp.stop()
        (root / "users.yaml").write_text(users)
        e2e.write_policies(POLICIES)
        e2e.restart_pdp()
        eventually(lambda: _sidecar_connected(e2e), 30)


def _allowed(e2e) -> bool:
    try:
        return e2e.query("carol", QUERY) == [[2]]
    except Exception:
        return False


def _sidecar_connected(e2e) -> bool:
    try:
        health = httpx.get(f"http://127.0.0.1:{e2e.sidecar_port}/health", timeout=2).json()
    except httpx.HTTPError:
        return False
    return health.get("pdp") == "connected"
