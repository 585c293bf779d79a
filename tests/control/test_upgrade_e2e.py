"""No policy downtime (spec §8.3), through the real PDP process and the real sidecar: a user a
policy lets read a legacy data source is allowed at every step of the upgrade (legacy
registration, start, validate, upgrade, partial, resolve, finalize, the first sync after it),
sampled continuously by a thread beside the steps. The policy names the data source by its
legacy connection name, which differs from the new connection key: after finalize it keeps
applying through the alias."""

from __future__ import annotations

import threading
import time

import httpx

from devstack import replica
from devstack.processes import free_port, start_sidecar
from tests.control import test_control_e2e as e2e

POLICIES = (
    replica.POLICIES
    + """
  - name: legacy-orders
    access: READ
    who: {users: [dora]}
    what: {dataSources: [legacyhc.cat.sales.orders]}
"""
)
USERS = replica.USERS + "  dora: {}\n"


def test_no_policy_downtime_through_the_sidecar(tmp_path, monkeypatch):
    monkeypatch.setattr(replica, "POLICIES", POLICIES)
    monkeypatch.setattr(replica, "USERS", USERS)
    monkeypatch.setattr(replica, "CLOSED", replica.CLOSED + "immuta.user.admin=pdp|svc-.*\n")
    world = tmp_path / "world.json"
    replica.write_world(
        world,
        {"cat": {"sales": {"orders": [["id", "bigint"]], "Items": [["id", "bigint"]]}}},
    )
    pdp = replica.Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "a")
    sidecar = None
    stop = threading.Event()
    denials: list[str] = []
    step = ["legacy"]
    try:
        port = free_port()
        sidecar = start_sidecar(pdp.tree.sidecar_yaml(port, pdp.grpc_port), port)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        orders = e2e.body("cat", "sales", "orders", user="dora")
        assert client.post("/v1/data/trino/allow", json=orders).json()["result"] is False

        legacy = {
            "name": "legacyhc",
            "technology": "trino",
            "endpoint": {"host": "fake"},
            "credentials": {"username": "pdp", "password": "pw"},
        }
        for table in ("orders", "items", "ghost"):  # items: by case; ghost: not found
            answer = pdp.api.post(
                "/dataSource",
                json={"connection": legacy, "database": "cat", "schema": "sales", "table": table},
            )
            assert answer.status_code == 201, answer.text
        e2e.poll(client, orders, True)  # the legacy data source governs

        def sample() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as sampler:
                while not stop.is_set():
                    answer = sampler.post("/v1/data/trino/allow", json=orders).json()
                    if answer["result"] is not True:
                        denials.append(step[0])
                    time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def at(name: str, method: str, url: str, body: dict | None = None) -> dict:
            step[0] = name
            answer = pdp.api.request(method, url, json=body)
            assert answer.status_code < 300, answer.text
            time.sleep(0.6)  # let the PDP publish whatever revision the step made
            assert client.post("/v1/data/trino/allow", json=orders).json()["result"] is True, name
            return answer.json()

        at("start", "POST", "/data/upgrade/legacyhc/start", {"displayName": "hc"})
        # the cluster's immuta.user.admin must match the system user
        other = {"username": "mallory", "password": "pw"}
        refused = pdp.api.post("/data/upgrade/legacyhc/validate", json={"credentials": other})
        assert refused.status_code == 422 and refused.json()["error"]["value"] == "systemUser"
        at("validate", "POST", "/data/upgrade/legacyhc/validate", {})
        job = at("upgrade", "POST", "/data/upgrade/legacyhc/upgrade", {"confirm": True})
        assert pdp.wait_job(job["jobId"])["state"] == "completed"
        status = at("partial", "GET", "/data/upgrade/legacyhc")
        assert status["state"] == "partial" and status["counts"]["matched"] == 2
        ghost = pdp.api.get("/data/upgrade/legacyhc/unresolved").json()["hits"][0]
        assert ghost["table"] == "ghost" and ghost["reason"].startswith("not_found")
        at("resolve", "POST", f"/data/upgrade/legacyhc/resolve/{ghost['id']}", {"action": "delete"})
        at("finalize", "POST", "/data/upgrade/legacyhc/finalize")
        e2e.poll(client, orders, True)
        assert pdp.sync("hc")["state"] == "completed"  # object sync is on again
        at("after", "GET", "/data/upgrade/legacyhc")
        retired = pdp.api.put("/dataSource/detectRemoteChanges", json={"connection": "legacyhc"})
        assert retired.status_code == 400
        assert retired.json()["error"]["replacement"] == "POST /data/crawl/hc"
        stop.set()
        sampler.join(10)
        assert denials == [], f"denied during {sorted(set(denials))}"
        client.close()
    finally:
        stop.set()
        if sidecar is not None:
            sidecar.stop()
        pdp.stop()
