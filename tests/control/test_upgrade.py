"""The connection upgrade manager as its state machine, through the admin API, on both store
backends: legacy data sources that match exactly, by case only, ambiguously and not at all;
every refusal (wrong order, missing confirmation, missing permission, invalid key, failed
credentials, finalize with unresolved items, manual sync before finalize); the legacy
endpoints retired after the upgrade; the compiled registry governing at every step."""

from __future__ import annotations

from pdp.store import read_registry

LEGACY = {
    "technology": "trino",
    "endpoint": {"host": "trino.example", "port": 8080},
    "credentials": {"username": "pdp", "passwordEnv": "TRINO_PASSWORD"},
}


def register(api, database, schema, table, user="appadmin", **extra):
    body = {"connection": {"name": "legacyhc", **LEGACY}, "database": database}
    body.update(schema=schema, table=table, **extra)
    answer = api.call("POST", "/dataSource", user, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def governed(api) -> set[str]:
    return {s.path.casefold() for s in read_registry(api.store).sources}


def setup_legacy(api):
    p = api.platform
    p.add_table("lake", "raw", "Dup")
    p.add_table("lake", "raw", "DUP")
    p.add_table("lake", "secret", "x")
    p.failing[("lake", "secret")] = "permission denied"
    p.add_table("hold", "sales", "refunds")
    ids = {
        "exact": register(api, "hold", "sales", "orders", tags=["pii"], owners=["olga"])["id"],
        "case": register(api, "HOLD", "SALES", "CUSTOMERS")["id"],
        "inactive": register(api, "hold", "hr", "people", status="inactive")["id"],
        "ambiguous": register(api, "lake", "raw", "dup")["id"],
        "missing": register(api, "hold", "sales", "ghost")["id"],
        "hidden": register(api, "lake", "secret", "x")["id"],
    }
    answer = api.call(
        "PUT",
        "/integrations/legacyhc/schemaMonitoring",
        json={"database": "hold", "schema": "sales", "enabled": True},
    )
    assert answer.status_code == 200, answer.text
    return ids


def test_upgrade_state_machine_refusals_matching_and_retired_endpoints(api):
    ids = setup_legacy(api)
    before = governed(api)
    assert "legacyhc.hold.sales.orders" in before
    assert "legacyhc.hold.hr.people" not in before  # inactive: retired, as in the YAML

    # permission: GOVERNANCE and APPLICATION_ADMIN both
    for user in ("gov", "appadmin"):
        refused = api.call("GET", "/data/upgrade", user)
        assert refused.status_code == 403, user
        assert refused.json()["error"]["permission"] == "GOVERNANCE and APPLICATION_ADMIN"
    assert api.call("GET", "/data/upgrade", "nobody").status_code == 403
    listed = api.call("GET", "/data/upgrade", "boss").json()
    assert listed["hits"][0]["name"] == "legacyhc"
    assert listed["hits"][0]["dataSourceCount"] == 6
    assert listed["hits"][0]["state"] == "not_started"

    # wrong order: validate, upgrade, resolve, finalize before start
    for step, body in (("validate", {}), ("upgrade", {"confirm": True}), ("finalize", None)):
        refused = api.call("POST", f"/data/upgrade/legacyhc/{step}", "boss", json=body)
        assert refused.status_code == 409, (step, refused.text)
        assert refused.json()["error"]["state"] == "not_started"
        assert refused.json()["error"]["allowed"] == ["start"]

    # invalid key
    for bad in ("upgrade", "has space", "x" * 129):
        refused = api.call(
            "POST", "/data/upgrade/legacyhc/start", "boss", json={"displayName": bad}
        )
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["field"] in ("connectionKey", "displayName")
    start = api.call("POST", "/data/upgrade/legacyhc/start", "boss", json={"displayName": "hc"})
    assert start.status_code == 200 and start.json()["state"] == "started"
    again = api.call("POST", "/data/upgrade/legacyhc/start", "boss", json={"displayName": "hc"})
    assert again.json() == start.json()  # repeated: same answer
    assert governed(api) == before

    # failed credentials: each failed check named, state unchanged
    api.platform.refuse_credentials = True
    refused = api.call("POST", "/data/upgrade/legacyhc/validate", "boss", json={})
    assert refused.status_code == 422
    assert [c["name"] for c in refused.json()["error"]["checks"] if not c["ok"]] == ["authenticate"]
    shape = api.call(
        "POST",
        "/data/upgrade/legacyhc/validate",
        "boss",
        json={"credentials": {"username": "pdp"}},
    )
    assert shape.status_code == 422
    assert shape.json()["error"]["checks"][0]["name"] == "credentials"
    admin = api.call(
        "POST",
        "/data/upgrade/legacyhc/validate",
        "boss",
        json={
            "endpoint": {**LEGACY["endpoint"], "adminUsers": "immuta"},
            "credentials": LEGACY["credentials"],
        },
    )
    assert admin.status_code == 422
    assert admin.json()["error"]["value"] == "systemUser"
    assert api.call("GET", "/data/upgrade/legacyhc", "boss").json()["state"] == "started"
    api.platform.refuse_credentials = False
    valid = api.call("POST", "/data/upgrade/legacyhc/validate", "boss", json={})
    assert valid.status_code == 200, valid.text
    assert valid.json()["state"] == "validated"

    # missing confirmation
    refused = api.call("POST", "/data/upgrade/legacyhc/upgrade", "boss", json={})
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "confirm"
    assert governed(api) == before

    # the upgrade job
    answer = api.call("POST", "/data/upgrade/legacyhc/upgrade", "boss", json={"confirm": True})
    assert answer.status_code == 202, answer.text
    api.app_upgrades().join()
    job = api.wait(answer.json()["jobId"])
    assert job["type"] == "upgrade" and job["state"] == "completed", job
    assert job["stats"]["matched"] == 3 and job["stats"]["matchedByCase"] == 1
    assert job["stats"]["unresolved"] == 3
    status = api.call("GET", "/data/upgrade/legacyhc", "boss").json()
    assert status["state"] == "partial"
    assert status["counts"]["matched"] == 3 and status["counts"]["unresolved"] == 3
    unresolved = api.call("GET", "/data/upgrade/legacyhc/unresolved", "boss").json()
    reasons = {h["id"]: h["reason"].split(":")[0] for h in unresolved["hits"]}
    assert reasons == {
        ids["ambiguous"]: "ambiguous",
        ids["missing"]: "not_found",
        ids["hidden"]: "not_visible",
    }
    # policies keep applying: the legacy data sources govern until finalize
    assert governed(api) == before

    # matched objects kept identity, status, tags, owners
    orders = api.call("GET", "/data/object/hc/hold/sales/orders").json()
    assert orders["dataSourceId"] == ids["exact"]
    assert orders["overrides"]["isActive"] is True
    assert "pii" in orders["tags"]
    assert [o["principal"] for o in orders["dataOwners"]] == ["olga"]
    customers = api.call("GET", "/data/object/hc/hold/sales/customers").json()
    assert customers["dataSourceId"] == ids["case"]
    people = api.call("GET", "/data/object/hc/hold/hr/people").json()
    assert people["overrides"]["isActive"] is False
    # schema monitoring on: the unregistered table comes in active; elsewhere inactive
    refunds = api.call("GET", "/data/object/hc/hold/sales/refunds").json()
    assert refunds["settings"]["isActive"]["value"] is True
    events = api.call("GET", "/data/object/hc/lake/raw/events").json()
    assert events["settings"]["isActive"]["value"] is False

    # manual sync before finalize: 409 with the reason; the scheduler skips it
    refused = api.call("POST", "/data/crawl/hc")
    assert refused.status_code == 409
    assert "upgraded" in refused.json()["error"]["message"]

    # finalize with unresolved items
    refused = api.call("POST", "/data/upgrade/legacyhc/finalize", "boss")
    assert refused.status_code == 409
    assert "unresolved" in refused.json()["error"]["message"]

    # retired legacy endpoints, with the replacement
    for method, url, body in (
        ("PUT", f"/dataSource/{ids['exact']}", {"tags": ["x"]}),
        ("DELETE", f"/dataSource/{ids['exact']}", None),
        ("PUT", "/dataSource/detectRemoteChanges", {"connection": "legacyhc"}),
        (
            "PUT",
            "/integrations/legacyhc/schemaMonitoring",
            {"database": "hold", "schema": "sales", "enabled": False},
        ),
    ):
        refused = api.call(method, url, "appadmin", json=body)
        assert refused.status_code == 400, (url, refused.text)
        assert refused.json()["error"]["code"] == "legacy_retired"
        assert refused.json()["error"]["replacement"].split()[1].startswith("/data/")
    refused = api.call(
        "POST",
        "/dataSource",
        "appadmin",
        json={
            "connection": {"name": "legacyhc", **LEGACY},
            "database": "hold",
            "schema": "sales",
            "table": "new",
        },
    )
    assert refused.status_code == 400 and "replacement" in refused.json()["error"]

    # resolve: match by hand, retry, disable, delete
    wrong = api.call(
        "POST",
        f"/data/upgrade/legacyhc/resolve/{ids['ambiguous']}",
        "boss",
        json={"action": "match", "path": "hc/hold/sales/orders"},
    )
    assert wrong.status_code == 409  # matched to another data source already
    answer = api.call(
        "POST",
        f"/data/upgrade/legacyhc/resolve/{ids['ambiguous']}",
        "boss",
        json={"action": "delete"},
    )
    assert answer.status_code == 200 and answer.json()["unresolved"] == 2
    api.platform.failing.clear()
    answer = api.call(
        "POST",
        f"/data/upgrade/legacyhc/resolve/{ids['hidden']}",
        "boss",
        json={"action": "retry"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["dataSource"]["matchState"] == "matched"
    answer = api.call(
        "POST",
        f"/data/upgrade/legacyhc/resolve/{ids['missing']}",
        "boss",
        json={"action": "disable"},
    )
    assert answer.json()["state"] == "upgraded" and answer.json()["unresolved"] == 0
    assert "legacyhc.hold.sales.orders" in governed(api)

    # finalize: object sync on, next sync planned, the new connection governs
    done = api.call("POST", "/data/upgrade/legacyhc/finalize", "boss")
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "finalized" and done.json()["nextSync"]
    again = api.call("POST", "/data/upgrade/legacyhc/finalize", "boss")
    assert again.json()["state"] == "finalized"
    after = governed(api)
    assert "hc.hold.sales.orders" in after and "hc.hold.sales.customers" in after
    assert "hc.hold.sales.refunds" in after  # schema monitoring
    assert "hc.hold.hr.people" not in after
    assert read_registry(api.store).aliases == {"legacyhc": "hc"}
    assert api.call("GET", "/data/connection/hc").json()["state"] == "active"
    job = api.wait(api.call("POST", "/data/crawl/hc").json()["jobId"])
    assert job["state"] == "completed"
    listed = api.call("GET", "/data/upgrade", "boss").json()
    assert listed["count"] == 0 and listed["finalized"] == 1


def test_legacy_api_on_a_connection_not_upgraded(api):
    source = register(api, "hold", "sales", "orders", tags=["pii"])
    assert "legacyhc.hold.sales.orders" in governed(api)
    edited = api.call("PUT", f"/dataSource/{source['id']}", json={"status": "inactive"})
    assert edited.status_code == 200 and edited.json()["status"] == "inactive"
    assert "legacyhc.hold.sales.orders" not in governed(api)
    api.call(
        "PUT",
        "/integrations/legacyhc/schemaMonitoring",
        json={"database": "hold", "schema": "sales", "enabled": True},
    )
    found = api.call("PUT", "/dataSource/detectRemoteChanges", json={"connection": "legacyhc"})
    assert found.status_code == 200, found.text
    assert [s["table"] for s in found.json()["added"]] == ["customers"]
    assert "legacyhc.hold.sales.customers" in governed(api)
    gone = api.call("DELETE", f"/dataSource/{source['id']}")
    assert gone.status_code == 200
    assert api.call("DELETE", f"/dataSource/{source['id']}").status_code == 404
    assert api.call("POST", "/dataSource", "nobody", json={}).status_code == 403
