"""Failure paths: malformed bodies get a 400 saying what is wrong; without the PDP and without
a cached answer the sidecar denies."""

from __future__ import annotations

import copy
import time

import httpx
import pytest

from devstack.processes import start_pdp
from tests.conftest import start_stack
from tests.sidecar.test_revocation import BODY, poll


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("failure"))
    yield running
    running.sidecar.stop()
    running.pdp.stop()


IDENTITY_ONLY = {
    "input": {
        "context": {
            "identity": {"user": "alice", "groups": []},
            "softwareStack": {"trinoVersion": "478"},
        },
        "action": {"operation": "ExecuteQuery"},
    }
}


@pytest.mark.parametrize(
    ("path", "content", "fragment"),
    [
        ("allow", b"{not json", "body is not valid JSON"),
        ("allow", b"[]", "body: expected an object, got list"),
        (
            "allow",
            b'{"input": {"context": {}, "action": {"operation": "ExecuteQuery"}}}',
            "input.context.identity: expected an object, got nothing",
        ),
        (
            "allow",
            b'{"input": {"context": {"identity": {"user": 7}}, "action": {"operation": "X"}}}',
            "input.context.identity.user: expected a non-empty string, got int",
        ),
        (
            "allow",
            b'{"input": {"context": {"identity": {"user": "a", "groups": "g"}}, '
            b'"action": {"operation": "X"}}}',
            "identity.groups: expected a list of strings",
        ),
        (
            "allow",
            b'{"input": {"context": {"identity": {"user": "a"}}, "action": {"operation": '
            b'"SelectFromColumns", "resource": {"table": {"catalogName": "c"}}}}}',
            "input.action.resource.table.schemaName: expected a non-empty string",
        ),
        (
            "allow",
            b'{"input": {"context": {"identity": {"user": "a"}}, "action": {"operation": '
            b'"SelectFromColumns", "resource": {"widget": {}}}}}',
            "input.action.resource: SelectFromColumns carries a table, got ['widget']",
        ),
        (
            "batch",
            b'{"input": {"context": {"identity": {"user": "a"}}, "action": {"operation": '
            b'"FilterTables", "filterResources": {}}}}',
            "filterResources: expected a list",
        ),
        (
            "batch",
            b'{"input": {"context": {"identity": {"user": "a"}}, "action": {"operation": '
            b'"FilterTables"}}}',
            "filterResources: required by this endpoint",
        ),
        (
            "rowFilters",
            b'{"input": {"context": {"identity": {"user": "a"}}, "action": {"operation": '
            b'"SelectFromColumns"}}}',
            "this endpoint serves GetRowFilters",
        ),
        (
            "allow",
            b'{"input": {"context": {"identity": {"user": "a"}}, "action": {"operation": '
            b'"GetColumnMask"}}}',
            "GetColumnMask belongs on its own endpoint",
        ),
    ],
)
def test_malformed_bodies_get_400_with_the_reason(stack, path, content, fragment):
    response = httpx.post(f"{stack.url}/v1/data/trino/{path}", content=content, timeout=5)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_unknown_operation_is_denied_with_200(stack):
    body = copy.deepcopy(BODY)
    body["input"]["action"]["operation"] = "TeleportTable"
    response = httpx.post(f"{stack.url}/v1/data/trino/allow", json=body, timeout=5)
    assert response.json() == {"result": False}
    assert "denied unknown operation 'TeleportTable'" in stack.sidecar.output()
    batch = copy.deepcopy(body)
    batch["input"]["action"]["filterResources"] = [batch["input"]["action"].pop("resource")]
    assert httpx.post(f"{stack.url}/v1/data/trino/batch", json=batch, timeout=5).json() == {
        "result": []
    }


def test_unknown_endpoint_and_method(stack):
    assert httpx.post(f"{stack.url}/v1/data/trino/nope", json=BODY).status_code == 404
    assert httpx.get(f"{stack.url}/v1/data/trino/allow").status_code == 405


def as_user(user: str) -> dict:
    body = copy.deepcopy(BODY)
    body["input"]["context"]["identity"]["user"] = user
    return body


def test_pdp_down_serves_cached_answers_and_denies_the_rest(stack_factory):
    stack = stack_factory()
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        assert client.post("/v1/data/trino/allow", json=BODY).json() == {"result": True}
        stack.pdp.stop()
        assert client.post("/v1/data/trino/allow", json=BODY).json() == {"result": True}
        # bob has never been seen: nothing cached, so fail closed (and say so in the log)
        assert client.post("/v1/data/trino/allow", json=as_user("bob")).json() == {"result": False}
        assert "PDP unavailable and nothing cached" in stack.sidecar.output()
        # identity checks need no PDP
        assert client.post("/v1/data/trino/allow", json=IDENTITY_ONLY).json() == {"result": True}
        # the PDP comes back on the same port: bob's WRITE policy is served again
        stack.pdp = start_pdp(stack.tree.root / "pdp.yaml", stack.pdp_port)
        write = copy.deepcopy(as_user("bob"))
        write["input"]["action"]["operation"] = "InsertIntoTable"
        deadline = time.monotonic() + 10
        while client.post("/v1/data/trino/allow", json=write).json() != {"result": True}:
            assert time.monotonic() < deadline, "sidecar did not recover"
            time.sleep(0.1)


def test_cached_answers_expire_when_the_pdp_stays_away(tmp_path):
    stack = start_stack(tmp_path, max_stale=1)
    try:
        with httpx.Client(base_url=stack.url, timeout=10) as client:
            assert client.post("/v1/data/trino/allow", json=BODY).json() == {"result": True}
            stack.pdp.stop()
            poll(client, want=False)
            assert "failing closed" in stack.sidecar.output()
    finally:
        stack.sidecar.stop()
        stack.pdp.stop()


def _body(operation: str, **action: object) -> dict:
    return {
        "input": {
            "context": {"identity": {"user": "alice", "groups": []}},
            "action": {"operation": operation, **action},
        }
    }


TABLE = {"table": {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}}
COLUMNS_OF = {"catalogName": "hive", "schemaName": "sales", "tableName": "orders"}


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        (
            "allow",
            _body("SelectFromColumns", resource={"table": {**COLUMNS_OF, "columns": 5}}),
            "input.action.resource.table.columns: expected a list of strings, got int",
        ),
        (
            "allow",
            _body("SelectFromColumns", resource={"table": {**COLUMNS_OF, "columns": [{}]}}),
            "table.columns: expected a list of strings, got a list holding dict",
        ),
        ("allow", _body("CreateSchema"), "CreateSchema needs a schema, got nothing"),
        ("allow", _body("ExecuteFunction", resource=TABLE), "ExecuteFunction carries a function"),
        ("allow", _body("ExecuteProcedure", resource=TABLE), "ExecuteProcedure carries a function"),
        ("allow", _body("CreateFunction", resource=TABLE), "CreateFunction carries a function"),
        ("allow", _body("DropFunction", resource=TABLE), "DropFunction carries a function"),
        ("allow", _body("RenameTable", resource=TABLE), "RenameTable needs the new name"),
        ("allow", _body("ExecuteQuery", resource=TABLE), "ExecuteQuery carries no resource"),
        (
            "batch",
            _body("SelectFromColumns", filterResources=[TABLE]),
            "SelectFromColumns is not a filter operation",
        ),
        (
            "batchColumnMasks",
            _body("GetColumnMask", filterResources=[TABLE]),
            "filterResources[0]: GetColumnMask carries a column, got ['table']",
        ),
        (
            "columnMask",
            _body("GetColumnMask", resource=TABLE),
            "input.action.resource: GetColumnMask carries a column, got ['table']",
        ),
    ],
)
def test_each_operation_carries_the_resource_the_contract_gives_it(stack, path, body, fragment):
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        # the well-formed twin first, so that a cache keyed on it would be tempted to answer
        client.post("/v1/data/trino/allow", json=_body("SelectFromColumns", resource=TABLE))
        client.post("/v1/data/trino/batch", json=_body("FilterTables", filterResources=[TABLE]))
        response = client.post(f"/v1/data/trino/{path}", json=body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_the_wire_contract_and_the_decision_table_name_the_same_operations():
    from pdp.core import OPERATIONS
    from pdp.wire.trino import FILTERS, RENAMES, RESOURCE_KIND

    assert set(RESOURCE_KIND) == set(OPERATIONS)
    assert set(OPERATIONS) >= FILTERS and set(OPERATIONS) >= RENAMES
