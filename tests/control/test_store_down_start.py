"""A PDP whose PostgreSQL store does not answer at start still starts: it decides on the policy
files and the store snapshot it saved when it last read the store (`control.snapshotFile`), its
admin API answers 503 `store_unavailable`, and it picks the store up when it answers, without a
restart (migrating it first if it was never migrated). The store's outage is a TCP proxy that
is shut and opened again on the same port, in front of the session's PostgreSQL."""

from __future__ import annotations

import time

import httpx
import pytest

from devstack.processes import free_port, start_sidecar
from devstack.replica import REGISTER, Replica, write_world
from tests.control.test_control_e2e import body, poll
from tests.support.gateproxy import GateProxy
from tests.support.waiting import wait_for


def store_state(replica: Replica) -> str:
    return replica.api.get("/health").json()["store"]


@pytest.fixture
def gate(pg):
    proxy = GateProxy(pg.port)
    yield proxy
    proxy.close()


def test_a_pdp_started_while_the_store_is_down_decides_and_picks_it_up(
    tmp_path, pg, new_database, gate
):
    direct = new_database("postgresql")
    url = pg.store_url(direct.rsplit("/", 1)[1]).replace(f":{pg.port}/", f":{gate.port}/")
    world = tmp_path / "world.json"
    write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]], "items": []}}})
    extra = "control: {snapshotFile: state/store-snapshot.json}\n"
    orders, items = body("cat", "sales", "orders"), body("cat", "sales", "items")
    declared = body("hive", "sales", "orders", user="bob")  # the policy files' own

    # a first run while the store answers: it registers a connection and saves the snapshot
    gate.open()
    first = Replica(tmp_path, url, world, "first", extra)
    try:
        answer = first.api.post(
            "/data/connection", json={**REGISTER, "settings": {"activateNewChildren": True}}
        )
        assert answer.status_code == 201, answer.text
        assert first.wait_job(answer.json()["jobId"])["state"] == "completed"
        saved = tmp_path / "state" / "store-snapshot.json"
        wait_for(lambda: "orders" in (saved.read_text() if saved.exists() else ""), 10, "saved")
    finally:
        first.stop()

    # the store goes down; a PDP starts
    gate.shut()
    started = time.monotonic()
    pdp = Replica(tmp_path, url, world, "second", extra)
    sidecar = None
    try:
        print(f"PDP ready {time.monotonic() - started:.2f} s after start, store down")
        assert store_state(pdp) == "unreachable"
        down = pdp.api.get("/data/object/hc")
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "store_unavailable"
        assert down.json()["error"]["field"] == "store"

        port = free_port()
        sidecar = start_sidecar(pdp.tree.sidecar_yaml(port, pdp.grpc_port), port)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        allow = "/v1/data/trino/allow"
        assert client.post(allow, json=declared).json()["result"] is True  # the files
        assert client.post(allow, json=orders).json()["result"] is True  # the saved snapshot
        assert client.post(allow, json=items).json()["result"] is True

        # the store comes back: picked up without a restart, then followed as usual
        gate.open()
        back = time.monotonic()
        wait_for(lambda: store_state(pdp) == "reachable", 15, "the store reachable again")
        print(f"store picked up {time.monotonic() - back:.2f} s after it answered")
        assert pdp.api.get("/data/object/hc").status_code == 200
        changed = pdp.api.put("/data/settings/hc/cat/sales/items", json={"isActive": False})
        assert changed.status_code == 200, changed.text
        poll(client, items, False)
        assert client.post(allow, json=orders).json()["result"] is True
        client.close()
    finally:
        if sidecar is not None:
            sidecar.stop()
        pdp.stop()


def test_a_never_migrated_store_that_answers_late_is_migrated_then_used(tmp_path, pg, gate):
    name = f"late_{int(time.time() * 1000) % 10**9}"
    with pg.connect() as admin:
        admin.execute(f"CREATE DATABASE {name}")  # empty: no schema at all
    try:
        url = pg.store_url(name).replace(f":{pg.port}/", f":{gate.port}/")
        world = tmp_path / "world.json"
        write_world(world, {"cat": {"sales": {"orders": [["id", "bigint"]]}}})
        pdp = Replica(tmp_path, url, world, "late")  # no snapshot file: the files alone
        try:
            assert store_state(pdp) == "unreachable"
            refused = pdp.api.post("/data/connection", json=REGISTER)
            assert refused.status_code == 503
            gate.open()
            wait_for(lambda: store_state(pdp) == "reachable", 15, "the store reachable")
            answer = pdp.api.post("/data/connection", json=REGISTER)
            assert answer.status_code == 201, answer.text
            assert pdp.wait_job(answer.json()["jobId"])["state"] == "completed"
        finally:
            pdp.stop()
    finally:
        with pg.connect() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
