"""The control plane with the real PDP process (`start_pdp`, the fake platform in place of the
crawlers) and the real sidecar: a table found by object sync and activated through the admin
API is governed like a hand-declared one; two replicas over one PostgreSQL store agree within a
second; a store outage answers 503 while decisions go on."""

from __future__ import annotations

import time

import httpx
import pytest

from devstack.processes import free_port, start_sidecar
from devstack.replica import REGISTER, Replica, write_world


def body(catalog: str, schema: str, table: str, user: str = "alice") -> dict:
    return {
        "input": {
            "context": {
                "identity": {"user": user, "groups": []},
                "softwareStack": {"trinoVersion": "484"},
            },
            "action": {
                "operation": "SelectFromColumns",
                "resource": {
                    "table": {
                        "catalogName": catalog,
                        "schemaName": schema,
                        "tableName": table,
                        "columns": ["id"],
                    }
                },
            },
        }
    }


def poll(client: httpx.Client, request: dict, want: bool, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.post("/v1/data/trino/allow", json=request).json()["result"] is want:
            return
        time.sleep(0.05)
    raise AssertionError(f"the sidecar did not answer {want} within {seconds}s")


def test_a_synced_table_is_governed_and_falls_back_when_it_disappears(tmp_path):
    world = tmp_path / "world.json"
    write_world(world, {})
    pdp = Replica(tmp_path, f"sqlite:///{tmp_path}/store.db", world, "a")
    sidecar = None
    try:
        port = free_port()
        sidecar = start_sidecar(pdp.tree.sidecar_yaml(port, pdp.grpc_port), port)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        orders = body("cat", "sales", "orders")
        assert client.post("/v1/data/trino/allow", json=orders).json()["result"] is False
        # the hand-declared connection keeps working beside the registered one
        declared = body("hive", "sales", "orders", user="bob")
        assert client.post("/v1/data/trino/allow", json=declared).json()["result"] is True

        answer = pdp.api.post("/data/connection", json=REGISTER)
        assert answer.status_code == 201, answer.text
        assert pdp.wait_job(answer.json()["jobId"])["state"] == "completed"

        # a table appears on the platform, object sync finds it (inactive), the API enables it
        write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]]}}})
        job = pdp.sync("hc")
        assert job["state"] == "completed" and job["stats"]["table.added"] == 1
        # (an inactive table is in the snapshot as retired, for grant sync: a new revision)
        enabled = pdp.api.put("/data/settings/hc/cat/sales/orders", json={"isActive": True})
        assert enabled.status_code == 200
        poll(client, orders, True)  # the policy on Connections.Trino.hc grants it

        # an unchanged re-sync publishes no new revision
        stable = pdp.revision()
        assert pdp.sync("hc")["state"] == "completed"
        time.sleep(0.6)
        assert pdp.revision() == stable

        # the table disappears: sync marks it missing, the decision falls back
        write_world(world, {"cat": {"sales": {}}})
        job = pdp.sync("hc")
        assert job["stats"]["table.missing"] == 1
        poll(client, orders, False)
        client.close()
    finally:
        if sidecar is not None:
            sidecar.stop()
        pdp.stop()


@pytest.fixture
def pg_store(pg, new_database) -> tuple[str, str]:
    url = new_database("postgresql")
    return url, url.rsplit("/", 1)[1]


def test_two_replicas_agree_within_a_second_and_survive_a_store_outage(tmp_path, pg, pg_store):
    url, dbname = pg_store
    world = tmp_path / "world.json"
    write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]], "items": []}}})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # The safety-net poll is 30 s: only LISTEN/NOTIFY brings a change within a second.
    slow_poll = "control: {storePollSeconds: 30}\n"
    a = Replica(tmp_path / "a", url, world, "a", slow_poll)
    b = Replica(tmp_path / "b", url, world, "b", slow_poll)
    sidecar = None
    try:
        assert a.revision() == b.revision()
        answer = a.api.post(
            "/data/connection",
            json={**REGISTER, "settings": {"activateNewChildren": True}},
        )
        assert answer.status_code == 201, answer.text
        assert a.wait_job(answer.json()["jobId"])["state"] == "completed"
        # the job is visible through the other replica, which refuses an overlapping sync
        assert b.api.get(f"/jobs/{answer.json()['jobId']}").json()["state"] == "completed"

        deadline = time.monotonic() + 5
        while a.revision() != b.revision():  # both caught up with the registration sync
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = b.revision()
        changed = a.api.put("/data/settings/hc/cat/sales/items", json={"isActive": False})
        start = time.monotonic()  # the change is committed when the answer arrives
        assert changed.status_code == 200
        while b.revision() == before:
            # a notification, a registry read and a compile
            assert time.monotonic() - start < 1.0, "replica b did not see the change in 1 s"
            time.sleep(0.02)
        print(f"replica b saw the change after {time.monotonic() - start:.3f} s")
        time.sleep(0.3)
        assert a.revision() == b.revision()

        port = free_port()
        sidecar = start_sidecar(b.tree.sidecar_yaml(port, b.grpc_port), port)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        orders = body("cat", "sales", "orders")
        poll(client, orders, True)

        # the store goes away: the admin API answers 503, decisions go on
        with pg.connect() as admin:
            admin.execute(f"DROP DATABASE {dbname} WITH (FORCE)")
        answer = b.api.get("/data/object/hc")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "store_unavailable"
        for _ in range(5):
            assert b.api.get("/data/object/hc").status_code == 503
        # one ERROR line for the outage, not one per request
        assert b.process.output().count("the admin API answers 503 until it returns") == 1
        deadline = time.monotonic() + 5
        while b.api.get("/health").json()["store"] != "unreachable":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.post("/v1/data/trino/allow", json=orders).json()["result"] is True
        client.close()
    finally:
        if sidecar is not None:
            sidecar.stop()
        a.stop()
        b.stop()
