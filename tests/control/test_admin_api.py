"""The admin API in process (FastAPI TestClient) over a real store and the fake platform:
the spec's rules end to end through HTTP and one
error shape everywhere."""

from __future__ import annotations

import threading
from urllib.parse import quote

import pdp.objects.settings
from tests.control.adminkit import REGISTER


def test_registration_sync_settings_limit_conflict_failsafe_deregistration(api, monkeypatch):
    api.platform.add_table("hold", "sales", "refunds")
    answer = api.call("POST", "/data/connection", "appadmin", json=REGISTER)
    assert answer.status_code == 201
    assert answer.json()["connectionKey"] == "hc"
    job = api.wait(answer.json()["jobId"])
    assert job["state"] == "completed" and job["trigger"] == "registration"

    # the first sync brought the databases in, inactive by default
    hold = api.call("GET", "/data/object/hc/hold").json()
    assert hold["kind"] == "database" and hold["remoteState"] == "present"
    assert hold["settings"]["isActive"] == {
        "value": False,
        "origin": "default",
        "inheritedFrom": "default",
    }
    connection = api.call("GET", "/data/connection/hc").json()
    assert connection["credentials"] == {"username": "pdp", "passwordEnv": "TRINO_PASSWORD"}
    listed = api.call("POST", "/data/object/search/hc", json={}).json()
    assert [h["name"] for h in listed["hits"]] == ["hold", "lake"]
    assert api.call("POST", "/data/object/search").json()["hits"][0]["path"] == "hc"

    # settings: activate new children from the connection down, enable one database
    answer = api.call("PUT", "/data/settings/hc", json={"activateNewChildren": True})
    assert answer.json()["settings"]["activateNewChildren"]["inheritedFrom"] == "hc"
    answer = api.call("PUT", "/data/settings/hc/hold", json={"isActive": True})
    assert answer.status_code == 200
    job = api.wait(api.call("POST", "/data/crawl/hc").json()["jobId"])
    assert job["state"] == "completed"
    orders = api.call("GET", "/data/object/hc/hold/sales/orders").json()
    assert orders["settings"]["isActive"]["value"] is True
    assert orders["dataSource"]["active"] is True
    assert [c["name"] for c in orders["columns"]] == ["id", "amount"]
    assert (
        api.call(
            "POST",
            "/data/object/search/hc",
            json={"recursive": True, "kind": "table", "isActive": True},
        ).json()["count"]
        == 4
    )
    # null = inherit: clear the override on hold, everything below follows the connection
    answer = api.call("PUT", "/data/settings/hc/hold", json={"isActive": None})
    assert answer.json()["settings"]["isActive"]["origin"] == "default"
    api.call("PUT", "/data/settings/hc/hold", json={"isActive": True})

    # the 100,000 rule (the limit lowered so the test stays small)
    monkeypatch.setattr(pdp.objects.settings, "DESCENDANT_LIMIT", 3)
    refused = api.call("PUT", "/data/settings/hc", json={"isActive": True})
    assert refused.status_code == 400
    assert refused.json()["error"]["field"] == "isActive"
    assert refused.json()["error"]["value"] == "hc"
    assert (
        api.call("PUT", "/data/settings/hc/hold/sales", json={"isActive": True}).status_code == 200
    )
    monkeypatch.undo()

    # a manual sync while one runs: 409 with the running job's id
    api.platform.gate = threading.Event()
    first = api.call("POST", "/data/crawl/hc").json()["jobId"]
    second = api.call("POST", "/data/crawl/hc/hold")
    assert second.status_code == 409
    assert second.json()["error"]["jobId"] == first
    api.platform.gate.set()
    api.platform.gate = None
    api.wait(first)

    # a failing listing marks nothing missing
    api.platform.failing[("hold", "sales")] = "timeout listing hold.sales"
    job = api.wait(api.call("POST", "/data/crawl/hc").json()["jobId"])
    assert job["state"] == "completed" and job["stats"]["failedListings"] == 1
    assert api.call("GET", "/data/object/hc/hold/sales").json()["remoteState"] == "unknown"
    assert api.call("GET", "/data/object/hc/hold/sales/orders").json()["remoteState"] == "present"
    api.platform.failing.clear()

    # the fail-safe: most tables gone at once -> failed job, nothing marked missing
    api.platform.world = {"hold": {"sales": {}, "hr": {}}, "lake": {"raw": {}}}
    job = api.wait(api.call("POST", "/data/crawl/hc").json()["jobId"])
    assert job["state"] == "failed" and "fail-safe" in job["errors"][-1]["message"]
    assert api.call("GET", "/data/object/hc/hold/sales/orders").json()["remoteState"] == "present"
    jobs = api.call("GET", "/jobs?connection=hc&state=failed").json()
    assert [j["id"] for j in jobs["hits"]] == [job["id"]]

    # deregistration: one transaction, how many objects went
    gone = api.call("DELETE", "/data/object/hc")
    assert gone.status_code == 200
    assert gone.json()["path"] == "hc" and gone.json()["childCount"] > 5
    assert api.call("GET", "/data/object/hc").status_code == 404


def test_registration_refused_by_the_platform_is_422_per_check(api):
    api.platform.refuse_credentials = True
    answer = api.call("POST", "/data/connection", "appadmin", json=REGISTER)
    assert answer.status_code == 422
    body = answer.json()["error"]
    assert body["code"] == "validation_failed"
    assert {
        "name": "authenticate",
        "ok": False,
        "detail": "the platform refused the credentials",
    } in body["checks"]
    assert api.call("GET", "/data/connection/hc").status_code == 404
    check = api.call("POST", "/data/connection/validate", "appadmin", json=REGISTER["connection"])
    assert check.status_code == 200 and check.json()["ok"] is False


def test_registration_rules(api):
    api.register()
    duplicate = api.call(
        "POST", "/data/connection", "appadmin", json={**REGISTER, "connectionKey": "HC"}
    )
    assert duplicate.status_code == 409 and duplicate.json()["error"]["field"] == "connectionKey"
    reserved = api.call(
        "POST", "/data/connection", "appadmin", json={**REGISTER, "connectionKey": "sync"}
    )
    assert reserved.status_code == 400
    assert reserved.json()["error"] == {
        "code": "invalid_input",
        "message": "'sync' is a reserved word",
        "field": "connectionKey",
        "value": "sync",
    }
    plaintext = {
        **REGISTER,
        "connectionKey": "pw",
        "connection": {**REGISTER["connection"], "credentials": {"password": "hunter2"}},
    }
    refused = api.call("POST", "/data/connection", "boss", json=plaintext)  # a second Trino
    assert refused.status_code == 400 and "hunter2" not in refused.text


def test_one_error_shape_everywhere(api):
    unknown_route = api.call("GET", "/nothing/here")
    assert unknown_route.status_code == 404
    assert unknown_route.json()["error"]["field"] == "path"
    bad_body = api.call("PUT", "/data/settings/hc", json={"isActive": "perhaps"})
    assert bad_body.status_code == 400
    assert bad_body.json()["error"]["field"] == "isActive"
    assert bad_body.json()["error"]["value"] == "perhaps"
    extra = api.call("POST", "/data/object/search", json={"sise": 5})
    assert extra.status_code == 400 and extra.json()["error"]["field"] == "sise"
    missing = api.call("GET", "/data/object/nope/x")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "connectionKey"
    no_user = api.client.get("/jobs")
    assert no_user.status_code == 401 and no_user.json()["error"]["code"] == "unauthenticated"
    assert api.call("GET", "/jobs/none").json()["error"]["field"] == "jobId"
    spec = api.client.get("/openapi.json").json()
    assert "/data/crawl/{path}" in spec["paths"]


def test_store_down_is_503(api):
    api.register()
    api.store.engine.dispose()
    original = api.store.engine.url
    from sqlalchemy import create_engine

    api.store.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        answer = api.call("GET", "/data/object/hc")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "store_unavailable"
    finally:
        api.store.engine = create_engine(original)


def test_a_name_with_a_slash_or_a_percent_is_one_path_segment(api):
    """A table named `a/b %41 ✓` is at `.../a%2Fb%20%2541%20%E2%9C%93`: the server decodes
    the URL before routing, but the slash and the percent stay inside the name."""
    name = "a/b %41 ✓"
    api.platform.add_table("hold", "sales", name)
    answer = api.call("POST", "/data/connection", "appadmin", json=REGISTER)
    assert api.wait(answer.json()["jobId"])["state"] == "completed"
    api.call("PUT", "/data/settings/hc", json={"activateNewChildren": True})
    assert api.wait(api.call("POST", "/data/crawl/hc").json()["jobId"])["state"] == "completed"
    path = "hc/hold/sales/" + quote(name, safe="")
    found = api.call("GET", f"/data/object/{path}")
    assert found.status_code == 200, found.text
    assert found.json()["name"] == name and found.json()["path"] == path
    assert api.call("PUT", f"/data/settings/{path}", json={"isActive": True}).status_code == 200
    assert api.call("GET", f"/data/permission/{path}").status_code == 200
    sales = api.call("POST", "/data/object/search/hc/hold/sales", json={}).json()
    assert path in [hit["path"] for hit in sales["hits"]]
