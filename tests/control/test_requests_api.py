"""Data source requests through the admin API (FastAPI TestClient) over a real store and the fake
platform: object sync opens them only while an active policy targets the `New` tag; owners see
and resolve the requests of their objects, governors all; one error shape (403 naming the
missing permission, 404, 409)."""

from __future__ import annotations

import pytest

from pdp.store import read_registry

ON = {"isActive": True, "activateNewChildren": True}
ORDERS = [("id", "bigint"), ("amount", "double")]


def setup(api, *, targeted: bool) -> None:
    """hc registered and active, `owner` Data Owner of hc/hold/sales, `steward`'s group of
    hc/lake; then a column added to orders and one dropped from events, and a sync."""
    api.runner.requests_wanted = lambda: targeted
    api.register()
    assert api.call("PUT", "/data/settings/hc", json=ON).status_code == 200
    api.wait(api.call("POST", "/data/crawl/hc").json()["jobId"])
    for path, principal, kind in (
        ("hc/hold/sales", "owner", "user"),
        ("hc/lake", "stewards", "group"),
    ):
        body = {"principal": principal, "role": "DataOwner", "principalKind": kind}
        assert api.call("PUT", f"/data/permission/{path}", json=body).status_code == 200
    api.platform.add_table("hold", "sales", "orders", [*ORDERS, ("note", "varchar")])
    api.platform.add_table("lake", "raw", "events", [])
    job = api.wait(api.call("POST", "/data/crawl/hc").json()["jobId"])
    assert job["state"] == "completed", job
    assert job["stats"].get("requestsOpened") == (2 if targeted else None)


def requests(api, user: str = "gov", **params) -> list[dict]:
    answer = api.call("GET", "/requests", user, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["hits"]


def test_no_policy_on_new_no_request_yet_the_column_is_still_tagged(api):
    setup(api, targeted=False)
    assert requests(api) == []
    columns = api.call("GET", "/data/object/hc/hold/sales/orders").json()["columns"]
    assert {c["name"]: c["tags"] for c in columns}["note"] == ["New"]


def test_an_active_policy_on_new_opens_a_request_per_added_and_deleted_column(api):
    setup(api, targeted=True)
    found = {(r["path"], r["column"], r["kind"], r["state"]) for r in requests(api)}
    assert found == {
        ("hc/hold/sales/orders", "note", "column_added", "pending"),
        ("hc/lake/raw/events", "id", "column_deleted", "pending"),
    }


VISIBILITY = [
    # (caller, query, columns they see)
    ("gov", {}, {"note", "id"}),
    ("owner", {}, {"note"}),  # Data Owner on the schema above orders
    ("steward", {}, {"id"}),  # through the group owning the database
    ("infra", {}, set()),  # holds a permission (below) but owns neither table
    ("gov", {"connection": "hc", "path": "/hc/lake"}, {"id"}),
    ("gov", {"state": "validated"}, set()),
    ("gov", {"path": "hc/HOLD/sales"}, {"note"}),  # names compare case-insensitively
]


@pytest.mark.parametrize(("caller", "query", "expected"), VISIBILITY)
def test_who_sees_which_requests(api, caller, query, expected):
    setup(api, targeted=True)
    infra = {"principal": "infra", "role": "InfrastructureAdmin"}
    assert api.call("PUT", "/data/permission/hc", json=infra).status_code == 200
    assert {r["column"] for r in requests(api, caller, **query)} == expected


def test_the_owner_validates_the_column_and_its_new_tag_comes_off(api):
    setup(api, targeted=True)
    added = next(r for r in requests(api) if r["kind"] == "column_added")
    before = read_registry(api.store)
    orders = next(s for s in before.sources if s.name == "orders")
    assert dict(orders.columns) == {"note": frozenset({"new"})}
    assert ("user", "owner") in orders.owners

    answer = api.call("POST", f"/requests/{added['id']}/validate", "owner")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "validated" and answer.json()["resolvedBy"] == "owner"
    assert api.call("GET", f"/requests/{added['id']}", "owner").json()["state"] == "validated"
    columns = api.call("GET", "/data/object/hc/hold/sales/orders").json()["columns"]
    assert {c["name"]: c["tags"] for c in columns}["note"] == []
    after = next(s for s in read_registry(api.store).sources if s.name == "orders")
    assert after.columns == ()  # the next revision carries no New tag: the mask goes

    again = api.call("POST", f"/requests/{added['id']}/validate", "owner")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_a_deleted_column_is_acknowledged(api):
    setup(api, targeted=True)
    deleted = next(r for r in requests(api) if r["kind"] == "column_deleted")
    answer = api.call("POST", f"/requests/{deleted['id']}/acknowledge", "steward")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "acknowledged"


ERRORS = [
    # (caller, method, url template, status, code)
    ("steward", "POST", "/requests/{added}/validate", 403, "forbidden"),  # not its owner
    ("nobody", "GET", "/requests/{added}", 403, "forbidden"),
    ("nobody", "GET", "/requests", 403, "forbidden"),  # holds no permission at all
    ("owner", "GET", "/requests/999999", 404, "not_found"),
    ("owner", "POST", "/requests/999999/validate", 404, "not_found"),
    ("owner", "GET", "/requests?state=done", 400, "invalid_input"),
    ("owner", "GET", "/requests/abc", 400, "invalid_input"),
]


@pytest.mark.parametrize(("caller", "method", "url", "status", "code"), ERRORS)
def test_request_errors_share_the_api_error_shape(api, caller, method, url, status, code):
    setup(api, targeted=True)
    added = next(r for r in requests(api) if r["kind"] == "column_added")
    answer = api.call(method, url.format(added=added["id"]), caller)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    if status == 403 and caller == "nobody":  # refused before anything is looked up
        assert error["permission"].startswith("any of GOVERNANCE")
    elif status == 403:
        assert error["permission"] == "DataOwner on hc/hold/sales/orders or above, or GOVERNANCE"


def test_a_governor_may_resolve_any_request(api):
    setup(api, targeted=True)
    added = next(r for r in requests(api) if r["kind"] == "column_added")
    answer = api.call("POST", f"/requests/{added['id']}/validate", "gov")
    assert answer.status_code == 200, answer.text
    assert answer.json()["resolvedBy"] == "gov"
