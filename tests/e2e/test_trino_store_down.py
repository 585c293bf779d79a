"""A PDP restarted while its store is down, through the real Trino (issue 20, item 2): the run's
PDP is swapped for one with a PostgreSQL store of the test's own (the fake platform behind the
crawler seam) and put back afterwards. The cluster's rules are the generous ones of the run:
an unregistered table is readable by anyone, so a registered table that fell back to them would
be readable by carol, whom no policy names.

register a connection: memory.sales.scratch becomes a data source, carol is denied
stop PostgreSQL, restart the PDP: carol stays denied (the snapshot kept by default), and the
    sidecar's /health says degraded
restart it without the snapshot: every table the policy files do not declare is denied
    (tpch too), the declared ones keep their policies (alice reads orders)
start PostgreSQL: the PDP reads the store by itself and is ok; tpch is readable again"""

from __future__ import annotations

import json
import sys

import httpx

from devstack.postgres import Throwaway
from devstack.processes import Process, free_port
from tests.e2e.conftest import E2E, eventually

WORLD = {"memory": {"sales": {"scratch": [["x", "integer"]]}}}
FAKE_PDP = (sys.executable, "-m", "devstack.fakepdp")
SCRATCH = "SELECT count(*) FROM memory.sales.scratch"
TPCH = "SELECT count(*) FROM tpch.tiny.region"
ORDERS = "SELECT count(*) FROM memory.sales.orders"


def reads(e2e: E2E, user: str, sql: str) -> bool:
    try:
        e2e.query(user, sql)
        return True
    except Exception:
        return False


def test_a_restart_with_the_store_down_keeps_carol_denied(e2e, tmp_path, stoppable_pg: Throwaway):
    root = e2e.tree.root
    world = tmp_path / "world.json"
    world.write_text(json.dumps(WORLD))
    admin_port = free_port()
    config = root / "pdp-store-down.yaml"
    config.write_text(
        (root / "pdp.yaml").read_text()
        + f"store: {stoppable_pg.store_url('store')}\n"
        + f"clusterProperties: {e2e.tree.properties.name}\n"  # type: ignore[union-attr]
        + f"admin: {{listen: '127.0.0.1:{admin_port}', trustUserHeader: true}}\n"
    )
    snapshot = root / ".cache" / "store-snapshot.json"  # the default beside pdp.yaml
    users = (root / "users.yaml").read_text()
    (root / "users.yaml").write_text(
        users + "  gwen: {permissions: [GOVERNANCE, APPLICATION_ADMIN]}\n"
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{admin_port}", headers={"X-Pdp-User": "gwen"}, timeout=30
    )
    sidecar = httpx.Client(base_url=f"http://127.0.0.1:{e2e.sidecar_port}", timeout=5)

    def start() -> Process:
        process = Process(
            [*FAKE_PDP, "--config", str(config), "--world", str(world), "--tick", "0.5"],
            tmp_path / f"pdp-{free_port()}.log",
        )

        def ready() -> bool:
            try:
                return api.get("/health").status_code == 200
            except httpx.HTTPError:
                return False

        process.wait_until(ready, timeout=60)
        eventually(lambda: sidecar.get("/health").json()["pdp"] == "connected", 30)
        return process

    e2e.pdp.stop()
    pdp = start()
    try:
        assert reads(e2e, "carol", SCRATCH)  # not registered yet: the generous rules
        answer = api.post(
            "/data/connection",
            json={
                "connectionKey": "hc",
                "connection": {
                    "technology": "trino",
                    "endpoint": {"host": "fake"},
                    "credentials": {},
                },
                "settings": {"activateNewChildren": True},
            },
        )
        assert answer.status_code == 201, answer.text
        eventually(lambda: not reads(e2e, "carol", SCRATCH), 30)
        e2e.denied("carol", SCRATCH)
        eventually(lambda: snapshot.exists() and "scratch" in snapshot.read_text(), 10)

        # PostgreSQL stops, the PDP restarts: the snapshot it kept governs
        stoppable_pg.stop()
        pdp.stop()
        pdp = start()
        e2e.denied("carol", SCRATCH)
        assert api.get("/health").json()["status"] == "degraded"
        assert reads(e2e, "carol", TPCH)  # the snapshot says tpch is nobody's data source
        health = sidecar.get("/health").json()
        assert health["status"] == "degraded" and "snapshot" in health["pdpDegraded"], health

        # and without a snapshot: nothing the policy files do not declare is readable
        pdp.stop()
        snapshot.unlink()
        pdp = start()
        e2e.denied("carol", SCRATCH)
        e2e.denied("carol", TPCH)
        assert reads(e2e, "alice", ORDERS)  # declared in the files: its policy holds
        health = sidecar.get("/health").json()
        assert health["status"] == "degraded" and "no snapshot" in health["pdpDegraded"], health

        # PostgreSQL is back: the PDP picks it up without a restart
        stoppable_pg.start()
        eventually(lambda: api.get("/health").json()["status"] == "ok", 60)
        eventually(lambda: reads(e2e, "carol", TPCH), 15)
        e2e.denied("carol", SCRATCH)
        eventually(lambda: sidecar.get("/health").json()["status"] == "ok", 15)
    finally:
        api.close()
        sidecar.close()
        pdp.stop()
        snapshot.unlink(missing_ok=True)
        (root / "users.yaml").write_text(users)
        e2e.restart_pdp()
        eventually(lambda: _connected(e2e), 30)


def _connected(e2e: E2E) -> bool:
    try:
        health = httpx.get(f"http://127.0.0.1:{e2e.sidecar_port}/health", timeout=2).json()
    except httpx.HTTPError:
        return False
    return health.get("pdp") == "connected"
