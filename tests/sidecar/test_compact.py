"""The product plugin's compact endpoints (sidecar/compact.py) on the real sidecar and PDP: the
same decisions as the OPA endpoints for the same asks, a whole call in one request, answers
tagged with the revision, a watch that returns when the revision moves, and 400s that name the
ask at fault."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from devstack.configs import WORKED_POLICIES
from tests.conftest import start_stack
from tests.sidecar.test_data_policies import POLICIES as DATA_POLICIES
from tests.sidecar.test_data_policies import PROPERTIES, column, started

DECISIONS, WATCH = "/v1/pdp/decisions", "/v1/pdp/watch"
POLICIES = DATA_POLICIES.replace(
    "policies:\n",
    "policies:\n  - {name: bob-orders, access: WRITE, who: {users: [bob]},"
    " what: {dataSources: [w.hive.crm.orders]}}\n",
)


def table(name: str, *columns: str) -> dict[str, object]:
    found: dict[str, object] = {"catalogName": "hive", "schemaName": "crm", "tableName": name}
    if columns:
        found["columns"] = list(columns)
    return {"table": found}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from started(tmp_path_factory.mktemp("compact"), POLICIES)


@pytest.fixture(scope="module")
def client(stack):
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


def opa(client: httpx.Client, endpoint: str, user: str, action: dict[str, object]) -> object:
    body = {"input": {"context": {"identity": {"user": user, "groups": []}}, "action": action}}
    return client.post(f"/v1/data/trino/{endpoint}", json=body).json()["result"]


def ask(client: httpx.Client, user: str, *asks: dict[str, object]) -> dict[str, object]:
    response = client.post(
        DECISIONS, json={"identity": {"user": user, "groups": []}, "asks": list(asks)}
    )
    assert response.status_code == 200, response.text
    return response.json()


# (user, ask): every kind of ask, each compared with what the OPA endpoint answers
ASKS = [
    ("alice", {"operation": "SelectFromColumns", "resource": table("customers", "email")}),
    ("bob", {"operation": "InsertIntoTable", "resource": table("orders")}),
    ("alice", {"operation": "InsertIntoTable", "resource": table("orders")}),
    ("alice", {"operation": "DropTable", "resource": table("customers")}),
    ("alice", {"operation": "ExecuteQuery"}),
    ("admin", {"operation": "DropTable", "resource": table("customers")}),
    (
        "alice",
        {
            "operation": "RenameTable",
            "resource": table("orders"),
            "targetResource": table("orders2"),
        },
    ),
]


@pytest.mark.parametrize(("user", "action"), ASKS)
def test_a_check_is_decided_as_the_opa_endpoint_decides_it(client, user, action) -> None:
    allowed = opa(client, "allow", user, action)
    answer = ask(client, user, action)["answers"][0]
    assert answer["allowed"] is allowed
    if not allowed:  # the PDP's reason, for the plugin's AccessDeniedException
        assert answer["reason"]


def test_one_request_answers_a_whole_call_tagged_with_the_revision(client) -> None:
    revision = client.get("/health").json()["revision"]
    tables = [table("customers"), table("orders"), table("elsewhere")]
    found = ask(
        client,
        "alice",
        {"operation": "FilterTables", "filterResources": tables},
        {"operation": "FilterColumns", "filterResources": [table("customers", "email", "ssn")]},
        {"operation": "FilterCatalogs", "filterResources": [{"catalog": {"name": "hive"}}]},
        {"operation": "GetRowFilters", "resource": table("orders")},
        {
            "operation": "GetColumnMask",
            "filterResources": [column("id", "bigint"), column("ssn", "varchar(11)")],
        },
    )
    assert found["revision"].startswith(f"{revision}+")  # + the cluster settings' digest
    tables_answer, columns, catalogs, filters, masks = found["answers"]
    batch = {"operation": "FilterTables", "filterResources": tables}
    assert tables_answer == {"indices": opa(client, "batch", "alice", batch)}
    assert columns == {"indices": [0, 1]}
    assert catalogs == {"indices": [0]}
    rows = opa(
        client, "rowFilters", "alice", {"operation": "GetRowFilters", "resource": table("orders")}
    )
    assert filters == {"rowFilters": [f["expression"] for f in rows]}
    assert len(filters["rowFilters"]) == 2
    mask_ask = {
        "operation": "GetColumnMask",
        "filterResources": [column("id", "bigint"), column("ssn", "varchar(11)")],
    }
    (ssn,) = opa(client, "batchColumnMasks", "alice", mask_ask)  # id has no mask
    assert ssn["index"] == 1
    assert masks == {"masks": [None, ssn["viewExpression"]["expression"]]}


def current(client: httpx.Client) -> str:
    return client.post(WATCH, json={"revision": "old", "waitSeconds": 5}).json()["revision"]


def test_the_watch_returns_when_the_revision_moves(stack, client) -> None:
    # an outdated revision: answered at once
    revision = current(client)
    assert revision.startswith(client.get("/health").json()["revision"] + "+")
    # the current one: answered after the wait, with the same revision
    start = time.monotonic()
    assert client.post(WATCH, json={"revision": revision, "waitSeconds": 0.3}).json() == {
        "revision": revision
    }
    assert time.monotonic() - start >= 0.3
    # a policy edit while a watch waits: it returns with the new revision
    stack.tree.write(
        "policies.yaml", POLICIES.replace("who: {users: [bob]}", "who: {users: [carol]}")
    )
    try:
        moved = client.post(WATCH, json={"revision": revision, "waitSeconds": 20}).json()
        assert moved["revision"] not in (None, revision)
        insert = {"operation": "InsertIntoTable", "resource": table("orders")}
        answer = ask(client, "bob", insert)
        assert answer["answers"] == [{"allowed": False, "reason": answer["answers"][0]["reason"]}]
    finally:
        stack.tree.write("policies.yaml", POLICIES)


def settings_digest(client: httpx.Client, wanted: Callable[[str], bool]) -> str:
    """The settings digest of the revision the watch reports, once `wanted` (bounded)."""
    deadline, revision = time.monotonic() + 20, "old"
    while True:
        answer = client.post(WATCH, json={"revision": revision, "waitSeconds": 1}).json()
        revision = answer["revision"]
        digest = revision.split("+")[1]
        if wanted(digest):
            return digest
        assert time.monotonic() < deadline, f"still {revision}"


def test_a_change_of_the_clusters_own_settings_moves_the_revision_too(stack, client) -> None:
    """cluster.properties changes decisions and the sidecar reads it itself, maybe after the
    PDP's revision moved for it: the digest makes the plugin drop what it cached then too."""
    first = current(client).split("+")[1]
    stack.tree.write("cluster.properties", PROPERTIES.replace("=admin", "=root"))
    try:
        settings_digest(client, lambda digest: digest != first)
    finally:
        stack.tree.write("cluster.properties", PROPERTIES)
    settings_digest(client, lambda digest: digest == first)  # the same settings, the same digest


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"asks": []}, "identity: expected an object"),
        ({"identity": {"user": "a"}, "asks": {}}, "asks: expected a list"),
        ({"identity": {"user": "a"}, "asks": [{"operation": "SelectFromColumns"}]}, "asks[0]: "),
        (
            {"identity": {"user": "a"}, "asks": [{"operation": "ExecuteQuery"}, 3]},
            "asks[1]: expected an object",
        ),
        (
            {
                "identity": {"user": "a"},
                "asks": [{"operation": "DropTable", "filterResources": [table("orders")]}],
            },
            "asks[0]: ",
        ),
        ({"identity": {"user": 7}, "asks": [{"operation": "ExecuteQuery"}]}, "identity.user"),
    ],
)
def test_a_bad_body_is_refused_naming_what_is_wrong(client, body, message) -> None:
    response = client.post(DECISIONS, json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_bad_watch_is_refused(client) -> None:
    response = client.post(WATCH, json={"revision": 3})
    assert response.status_code == 400
    assert "revision" in response.json()["error"]


def test_with_the_pdp_gone_past_the_staleness_bound_nothing_is_tagged_and_all_is_denied(
    tmp_path,
) -> None:
    stack = start_stack(tmp_path, max_stale=1, policies=WORKED_POLICIES)
    try:
        with httpx.Client(base_url=stack.url, timeout=10) as client:
            orders = {
                "operation": "SelectFromColumns",
                "resource": {
                    "table": {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}
                },
            }
            body = {"identity": {"user": "alice", "groups": ["analysts"]}, "asks": [orders]}
            first = client.post(DECISIONS, json=body).json()
            assert first["answers"] == [{"allowed": True}] and first["revision"]
            stack.pdp.stop()
            deadline = time.monotonic() + 10
            while (
                client.post(WATCH, json={"revision": first["revision"], "waitSeconds": 1}).json()[
                    "revision"
                ]
                is not None
            ):
                assert time.monotonic() < deadline, "the sidecar kept its revision"
            stale = client.post(DECISIONS, json=body).json()
            assert stale["revision"] is None
            assert stale["answers"][0]["allowed"] is False
    finally:
        stack.stop()


def test_a_fallback_answer_without_the_pdp_is_not_tagged_for_keeping(tmp_path) -> None:
    """With the PDP away, a user the sidecar holds no view of is denied: an answer for now, not
    for the whole revision, so it carries no revision; a cached user's answers still do."""
    stack = start_stack(tmp_path, policies=WORKED_POLICIES)
    try:
        with httpx.Client(base_url=stack.url, timeout=10) as client:
            orders = {
                "operation": "SelectFromColumns",
                "resource": {
                    "table": {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}
                },
            }

            def body(user: str, *groups: str) -> dict[str, object]:
                return {"identity": {"user": user, "groups": list(groups)}, "asks": [orders]}

            held = client.post(DECISIONS, json=body("alice", "analysts")).json()
            assert held["answers"] == [{"allowed": True}] and held["revision"]
            stack.pdp.stop()
            frank = client.post(DECISIONS, json=body("frank")).json()
            assert frank["answers"][0]["allowed"] is False
            assert frank["revision"] is None
            execute = {"identity": {"user": "frank"}, "asks": [{"operation": "ExecuteQuery"}]}
            assert client.post(DECISIONS, json=execute).json() == {
                "revision": held["revision"],  # identity checks need no PDP
                "answers": [{"allowed": True}],
            }
            assert client.post(DECISIONS, json=body("alice", "analysts")).json() == held
    finally:
        stack.stop()
