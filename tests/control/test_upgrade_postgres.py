"""The connection upgrade manager (spec §8) with the real PostgreSQL crawler: legacy data
sources declared by hand are matched against the tables a real database holds (§8.4): by exact
name, by case alone, ambiguously (two tables whose names differ in case only) and not at all;
and a schema the system user may not read leaves its sources not visible."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pdp.admin import create_app
from pdp.admin.auth import trusted_header
from pdp.control import ControlPlane, SyncRunner
from pdp.store import Store, read_registry
from tests.control.adminkit import CALLERS, Api
from tests.control.pgremote import LOOPBACK, REFERENCES, Remote, crawlers, credentials, endpoint

LEGACY = "legacypg"


@pytest.fixture
def pg_api(store: Store) -> Iterator[Api]:
    """The admin API in process over `store`, crawling real platforms."""
    factory = crawlers(store)
    runner = SyncRunner(store, factory)
    plane = ControlPlane(store, runner, factory, references=REFERENCES, network=LOOPBACK)
    app = create_app(plane, trusted_header(lambda: CALLERS))
    with TestClient(app) as client:
        yield Api(client, store, None, runner)  # type: ignore[arg-type]
    runner.join()


def declare(api: Api, remote: Remote, schema: str, table: str, **extra: object) -> str:
    connection = {
        "name": LEGACY,
        "technology": "postgresql",
        "endpoint": endpoint(remote),
        "credentials": credentials(remote),
    }
    body = {"connection": connection, "database": remote.database, "schema": schema}
    answer = api.call("POST", "/dataSource", "appadmin", json={**body, "table": table, **extra})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def upgrade(api: Api, key: str = "pgc") -> dict:
    for step, body in (
        ("start", {"displayName": key}),
        ("validate", {}),
        ("upgrade", {"confirm": True}),
    ):
        answer = api.call("POST", f"/data/upgrade/{LEGACY}/{step}", "boss", json=body)
        assert answer.status_code in (200, 202), (step, answer.text)
    api.app_upgrades().join()
    return api.wait(answer.json()["jobId"])


def reasons(api: Api) -> dict[str, str]:
    unresolved = api.call("GET", f"/data/upgrade/{LEGACY}/unresolved", "boss").json()
    return {h["id"]: h["reason"].split(":")[0] for h in unresolved["hits"]}


def test_legacy_sources_match_real_tables_exactly_by_case_ambiguously_or_not(pg_api, remote):
    remote.ddl(
        'CREATE TABLE sales."Orders" (id int)',  # beside sales.orders
        "CREATE TABLE sales.shipments (id int)",
        f"REVOKE ALL ON sales.orders FROM {remote.role}",  # table privileges play no part
    )
    ids = {
        "exact": declare(pg_api, remote, "sales", "customers", tags=["pii"], owners=["olga"]),
        "case": declare(pg_api, remote, "SALES", "REFUNDS"),
        "inactive": declare(pg_api, remote, "hr", "people", status="inactive"),
        "ambiguous": declare(pg_api, remote, "sales", "orders"),
        "missing": declare(pg_api, remote, "sales", "ghost"),
    }
    governed = {s.path.casefold() for s in read_registry(pg_api.store).sources}
    assert f"{LEGACY}.{remote.database}.sales.customers" in governed

    job = upgrade(pg_api)
    assert job["type"] == "upgrade" and job["state"] == "completed", job
    assert job["stats"]["matched"] == 3 and job["stats"]["matchedByCase"] == 1
    assert job["stats"]["unresolved"] == 2
    assert job["stats"]["failedListings"] == 0
    assert reasons(pg_api) == {ids["ambiguous"]: "ambiguous", ids["missing"]: "not_found"}
    status = pg_api.call("GET", f"/data/upgrade/{LEGACY}", "boss").json()
    assert status["state"] == "partial"

    db = remote.database
    customers = pg_api.call("GET", f"/data/object/pgc/{db}/sales/customers").json()
    assert customers["dataSourceId"] == ids["exact"]
    assert customers["overrides"]["isActive"] is True
    assert "pii" in customers["tags"]
    assert [o["principal"] for o in customers["dataOwners"]] == ["olga"]
    assert [c["name"] for c in customers["columns"]] == ["id", "name"]
    refunds = pg_api.call("GET", f"/data/object/pgc/{db}/sales/refunds").json()
    assert refunds["dataSourceId"] == ids["case"]
    people = pg_api.call("GET", f"/data/object/pgc/{db}/hr/people").json()
    assert people["overrides"]["isActive"] is False
    # never declared, no schema monitoring: found, and inactive
    shipments = pg_api.call("GET", f"/data/object/pgc/{db}/sales/shipments").json()
    assert shipments["settings"]["isActive"]["value"] is False
    assert shipments["dataSourceId"] is None or shipments["dataSourceId"] not in ids.values()
    # the two spellings of orders are one name to the store: sync skipped both
    for spelling in ("orders", "Orders"):
        gone = pg_api.call("GET", f"/data/object/pgc/{db}/sales/{spelling}")
        assert gone.status_code == 404, gone.text


def test_a_source_in_a_schema_the_system_user_cannot_read_is_not_visible(pg_api, remote):
    remote.ddl(f"REVOKE USAGE ON SCHEMA hr FROM {remote.role}")
    ids = {
        "exact": declare(pg_api, remote, "sales", "orders"),
        "hidden": declare(pg_api, remote, "hr", "people"),
    }
    job = upgrade(pg_api)
    assert job["state"] == "completed", job
    assert job["stats"]["matched"] == 1 and job["stats"]["unresolved"] == 1
    assert job["stats"]["failedListings"] == 1
    assert reasons(pg_api) == {ids["hidden"]: "not_visible"}
    # readable again: a retry matches it against the real table
    remote.ddl(f"GRANT USAGE ON SCHEMA hr TO {remote.role}")
    answer = pg_api.call(
        "POST", f"/data/upgrade/{LEGACY}/resolve/{ids['hidden']}", "boss", json={"action": "retry"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["dataSource"]["matchState"] == "matched"
    assert answer.json()["state"] == "upgraded" and answer.json()["unresolved"] == 0
    done = pg_api.call("POST", f"/data/upgrade/{LEGACY}/finalize", "boss")
    assert done.status_code == 200, done.text
    governed = {s.path.casefold() for s in read_registry(pg_api.store).sources}
    assert f"pgc.{remote.database}.hr.people" in governed
    assert f"pgc.{remote.database}.sales.orders" in governed
