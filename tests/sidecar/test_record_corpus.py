"""The recorder of `python -m devstack.record_corpus`, without Trino: it answers with the real
sidecar's answer, keeps each body once under the statement that sent it, drops what varies
between runs, and writes sorted files."""

from __future__ import annotations

import copy
import json
import threading

import httpx
import pytest

from devstack import record_corpus
from devstack.record_corpus import Recorder, Recording, write
from tests.conftest import start_stack


def body(user: str, operation: str, query_id: str | None = None, **action: object) -> dict:
    context: dict = {
        "identity": {"user": user, "groups": []},
        "softwareStack": {"trinoVersion": "476"},
    }
    if query_id is not None:
        context["queryId"] = query_id
    return {"input": {"context": context, "action": {"operation": operation, **action}}}


ORDERS = {"table": {"catalogName": "memory", "schemaName": "sales", "tableName": "orders"}}
SELECT = {"resource": {"table": {**ORDERS["table"], "columns": ["id"]}}}


@pytest.fixture
def recorder(tmp_path):
    stack = start_stack(
        tmp_path,
        registry=record_corpus.REGISTRY,
        policies=record_corpus.POLICIES,
        users=record_corpus.USERS,
        properties=record_corpus.PROPERTIES,
    )
    recording = Recording()
    server = Recorder(stack.url, recording)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield stack, recording, client
    finally:
        server.shutdown()
        server.client.close()
        stack.sidecar.stop()
        stack.pdp.stop()


def test_answers_are_the_sidecars_and_each_body_is_kept_once(recorder):
    stack, recording, client = recorder
    recording.current = {"mode": "batch", "user": "alice", "sql": "SELECT id FROM orders"}
    for query_id in ("q1", "q2"):  # the same body but for the query id
        sent = body("alice", "SelectFromColumns", query_id, **SELECT)
        answer = client.post("/v1/data/trino/allow", json=sent)
        direct = httpx.post(f"{stack.url}/v1/data/trino/allow", json=sent)
        assert (answer.status_code, answer.json()) == (direct.status_code, direct.json())
    assert answer.json() == {"result": False}  # alice is not in Trino's analysts group here
    recording.current = {"mode": "batch", "user": "bob", "sql": "SELECT id FROM orders"}
    assert client.post("/v1/data/trino/allow", json=body("bob", "ExecuteQuery")).json() == {
        "result": True
    }
    assert [(e["operation"], e["statement"]["user"]) for e in recording.bodies.values()] == [
        ("SelectFromColumns", "alice"),
        ("ExecuteQuery", "bob"),
    ]
    kept = next(iter(recording.bodies.values()))["request"]
    assert kept == body("alice", "SelectFromColumns", **SELECT)  # no queryId


def test_nothing_is_kept_between_statements(recorder):
    _, recording, client = recorder
    assert client.post("/v1/data/trino/allow", json=body("bob", "ExecuteQuery")).status_code == 200
    assert recording.bodies == {}


def test_query_owners_are_sorted_so_that_runs_compare():
    owners = [{"user": {"user": name, "groups": []}} for name in ("carol", "admin", "bob")]
    recording = Recording(current={"mode": "batch", "user": "admin", "sql": "SELECT 1"})
    recording.add("batch", body("admin", "FilterViewQueryOwnedBy", filterResources=owners))
    kept = next(iter(recording.bodies.values()))["request"]["input"]["action"]
    assert [o["user"]["user"] for o in kept["filterResources"]] == ["admin", "bob", "carol"]


def test_files_are_sorted_by_operation_then_body_whatever_the_arrival_order(tmp_path):
    bodies = [
        ("allow", body("bob", "SelectFromColumns", **SELECT)),
        ("batch", body("bob", "FilterTables", filterResources=[ORDERS])),
        ("allow", body("bob", "ExecuteQuery")),
        ("allow", body("alice", "ExecuteQuery")),
    ]
    written = []
    for order in (bodies, bodies[::-1]):
        recording = Recording(current={"mode": "single", "user": "bob", "sql": "SELECT 1"})
        for endpoint, sent in order:
            recording.add(endpoint, copy.deepcopy(sent))
        recording.statements.append({"mode": "single", "user": "bob", "sql": "SELECT 1"})
        out = tmp_path / str(len(written))
        assert write(recording, out) == {"allow": 3, "batch": 1}
        written.append({p.name: p.read_text() for p in out.iterdir()})
    assert written[0] == written[1]
    lines = [json.loads(line) for line in written[0]["allow.jsonl"].splitlines()]
    assert [
        (r["operation"], r["request"]["input"]["context"]["identity"]["user"]) for r in lines
    ] == [
        ("ExecuteQuery", "alice"),
        ("ExecuteQuery", "bob"),
        ("SelectFromColumns", "bob"),
    ]
    assert set(written[0]) == {"allow.jsonl", "batch.jsonl", "statements.jsonl"}
