"""Failure paths: malformed bodies get a 400 saying what is wrong; without the PDP and without
a cached answer the sidecar denies."""

from __future__ import annotations

import copy
import time

import httpx
import pytest

from tests.conftest import start_stack
from tests.sidecar.test_revocation import BODY, poll
from tests.support.processes import start_pdp


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
            "no known resource kind",
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
