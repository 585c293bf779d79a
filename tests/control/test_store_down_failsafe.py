"""A PDP with a store never decides as if the store's objects did not exist (issue 20, item 2).

Real processes: the PDP (`start_pdp` with the fake platform behind the crawler seam), the real
sidecar, and a PostgreSQL cluster of the test's own that is stopped (`pg_ctl stop`) and started
again. The cluster's rules are the generous demo ones (unregistered objects: READ, WRITE...), so
a registered table falling back to them would let carol read it.

1. The PDP keeps its store snapshot without any setting (`.cache/store-snapshot.json` beside
   pdp.yaml for PostgreSQL), readable by its user alone.
2. The store stops, the PDP restarts: it decides on that snapshot (carol still denied) and
   says `degraded` on its /health and, through the revision watch, on the sidecar's.
3. Without a snapshot: every object the policy files do not declare is denied (`store-unknown`),
   the declared ones keep their policies, and both /health say why.
4. The store starts again: the PDP reads it by itself and is `ok`."""

from __future__ import annotations

import stat

import httpx

from devstack.postgres import Throwaway
from devstack.processes import free_port, start_sidecar
from devstack.replica import REGISTER, Replica, write_world
from tests.control.test_control_e2e import body
from tests.support.waiting import wait_for

OPEN = "immuta.allowed.non.immuta.datasource.operations=READ,WRITE,CREATE,OWN\n"
ALLOW = "/v1/data/trino/allow"


def test_a_pdp_restarted_while_its_store_is_down_keeps_denying(tmp_path, stoppable_pg: Throwaway):
    url = stoppable_pg.store_url("store")
    world = tmp_path / "world.json"
    write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]]}}})
    registered = body("cat", "sales", "orders", user="carol")  # no policy grants carol
    unregistered = body("tpch", "tiny", "nation", user="carol")
    declared = body("hive", "sales", "orders", user="bob")  # the policy files' own

    monitoring = free_port()
    extra = f"monitoring: {{listen: '127.0.0.1:{monitoring}'}}\n"
    pdp = Replica(tmp_path, url, world, "pg", extra, properties=OPEN)

    def ready() -> dict:
        return httpx.get(f"http://127.0.0.1:{monitoring}/health/ready").json()

    sidecar = None
    try:
        answer = pdp.api.post(
            "/data/connection", json={**REGISTER, "settings": {"activateNewChildren": True}}
        )
        assert answer.status_code == 201, answer.text
        assert pdp.wait_job(answer.json()["jobId"])["state"] == "completed"
        snapshot = tmp_path / ".cache" / "store-snapshot.json"  # the default: nothing set
        wait_for(lambda: snapshot.exists() and "orders" in snapshot.read_text(), 10, "saved")
        assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
        assert pdp.api.get("/health").json()["status"] == "ok"

        port = free_port()
        sidecar = start_sidecar(pdp.tree.sidecar_yaml(port, pdp.grpc_port), port)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)

        def allowed(request: dict) -> bool:
            return client.post(ALLOW, json=request).json()["result"]

        def sidecar_health() -> dict:
            return client.get("/health").json()

        assert allowed(registered) is False  # a data source now: no policy for carol
        assert allowed(unregistered) is True

        # the store stops, the PDP restarts: the saved snapshot governs
        stoppable_pg.stop()
        pdp.restart()
        health = pdp.api.get("/health").json()
        assert health["store"] == "unreachable"
        assert health["status"] == "degraded"
        assert "snapshot of version" in health["reason"]
        assert ready()["degraded"] == health["reason"]  # ready all the same: it fails closed
        assert ready()["status"] == "ready"
        wait_for(lambda: sidecar_health()["pdp"] == "connected", 15, "the sidecar reconnected")
        assert allowed(registered) is False
        assert allowed(unregistered) is True  # the snapshot says what the store holds
        assert allowed(declared) is True
        seen = sidecar_health()
        assert seen["status"] == "degraded" and "snapshot" in seen["pdpDegraded"], seen

        # no snapshot either: whatever the files do not declare is denied
        pdp.process.stop()
        snapshot.unlink()
        pdp.restart()
        health = pdp.api.get("/health").json()
        assert health["status"] == "degraded"
        assert "no snapshot" in health["reason"]
        wait_for(lambda: sidecar_health()["pdp"] == "connected", 15, "the sidecar reconnected")
        wait_for(lambda: allowed(unregistered) is False, 10, "the unregistered table denied")
        assert allowed(registered) is False
        assert allowed(declared) is True  # the policy files' data sources keep their policies
        seen = sidecar_health()
        assert seen["status"] == "degraded" and "no snapshot" in seen["pdpDegraded"], seen

        # the store starts again: picked up without a restart, the snapshot saved anew
        stoppable_pg.start()
        wait_for(lambda: pdp.api.get("/health").json()["status"] == "ok", 30, "the PDP ok")
        assert ready() == {"status": "ready"}
        wait_for(lambda: allowed(unregistered) is True, 10, "the unregistered table allowed")
        assert allowed(registered) is False
        wait_for(lambda: sidecar_health()["status"] == "ok", 10, "the sidecar ok")
        wait_for(snapshot.exists, 10, "the snapshot saved again")
        client.close()
    finally:
        if sidecar is not None:
            sidecar.stop()
        pdp.stop()
