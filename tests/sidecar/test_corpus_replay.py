"""Every request body of the plugin corpora (tests/fixtures/trino-opa), sent to the real sidecar
over HTTP: the bodies recorded from the real Trino 476, against the configuration they were
recorded with (devstack/record_corpus.py), and those of the plugin's own tests in Trino 478-484.

Each answer must be one the plugin reads without error (tests/support/plugin.py, itself checked
against the corpus's response cases), and must equal the pure core's answer on the same body:
decisions, row filters and column masks.
"""

from __future__ import annotations

import json

import httpx
import pytest

from devstack import record_corpus
from pdp.core import decide
from pdp.core.datapolicy import column_mask, row_filters
from pdp.core.model import TableRef
from pdp.wire.datapolicy import (
    batch_masks_answer,
    column_mask_answer,
    mask_columns,
    row_filters_answer,
)
from pdp.wire.trino import decode, single_key
from tests.conftest import start_stack
from tests.support import plugin
from tests.support.corpus import (
    RECORDED,
    RECORDED_REQUESTS,
    UPSTREAM_REQUESTS,
    endpoint,
    requests,
)

REGISTRY = """
connections:
  - name: corpus
    technology: trino
    status: active
    databases:
      - name: my_catalog
        schemas:
          - {name: my_schema, tables: [my_table, other_table]}
          - {name: schema_one, tables: [table_one]}
          - {name: schema_two, tables: [table_two]}
      - name: sample_catalog
        schemas:
          - {name: sample_schema, tables: [restricted_table]}
"""
POLICIES = """
policies:
  - {name: my-table-readers, access: READ, who: {groups: [some-group]},
     what: {dataSources: [corpus.my_catalog.my_schema.my_table]}}
  - {name: bob-writes-restricted, access: WRITE, who: {users: [bob]},
     what: {dataSources: [corpus.sample_catalog.sample_schema.restricted_table]}}
  - {name: table-one-for-all, access: READ, who: {anyone: true},
     what: {schemas: [corpus.my_catalog.schema_one]}}
"""
PROPERTIES = """
immuta.allowed.immuta.datasource.operations=READ,WRITE
immuta.allowed.non.immuta.datasource.operations=READ
immuta.user.admin=admin
"""
RECORDS = requests()
RECORDED_RECORDS = requests(RECORDED, RECORDED_REQUESTS)


def _serve(tmp_path_factory, **tree):
    running = start_stack(tmp_path_factory.mktemp("corpus"), **tree)
    try:
        with httpx.Client(base_url=running.url, timeout=10) as client:
            yield running, client
    finally:
        running.sidecar.stop()
        running.pdp.stop()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    yield from _serve(
        tmp_path_factory,
        registry=REGISTRY,
        policies=POLICIES,
        users="users: {}\n",
        properties=PROPERTIES,
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    yield from _serve(
        tmp_path_factory,
        registry=record_corpus.REGISTRY,
        policies=record_corpus.POLICIES,
        users=record_corpus.USERS,
        properties=record_corpus.PROPERTIES,
    )


@pytest.fixture(scope="module")
def stack(upstream):
    return upstream[0]


@pytest.fixture(scope="module")
def client(upstream):
    return upstream[1]


_LOADED: dict = {}


def _policy(tree):
    """What a stack serves, loaded once: no test here edits its files."""
    if tree.root not in _LOADED:
        _LOADED[tree.root] = tree.snapshot(), tree.settings()
    return _LOADED[tree.root]


def oracle(stack, route: str, body: dict):
    """What the plugin should end up with, computed by the pure core in this process."""
    call = decode(json.dumps(body).encode())
    snapshot, settings = _policy(stack.tree)
    view = snapshot.view(settings, call.identity)
    if route == "allow":
        return decide(view, call.request()).allowed
    if route == "batch":
        if call.operation == "FilterColumns":
            allowed = decide(view, call.request(call.items[0])).allowed
            return list(range(len(call.columns))) if allowed else []
        return [i for i, r in enumerate(call.items) if decide(view, call.request(r)).allowed]
    if route == "rowFilters":
        assert isinstance(call.resource, TableRef)
        answer = row_filters_answer(row_filters(view, call.identity, call.resource.key))
        return plugin.read(route, 200, answer)
    columns = mask_columns(body, batch=route == "batchColumnMasks")
    masks = [column_mask(view, call.identity, c.table, c.column, c.type) for c in columns]
    if route == "columnMask":
        return plugin.read(route, 200, column_mask_answer(masks[0]))
    return plugin.read(route, 200, batch_masks_answer(masks), items=len(columns))


def replay(stack, client, record) -> object:
    """The plugin's reading of the sidecar's answer to the record's body, checked against the
    pure core's."""
    route = endpoint(record)
    body = record["request"]
    response = client.post(f"/v1/data/trino/{route}", json=body)
    assert response.status_code == 200, response.text
    items = body["input"]["action"].get("filterResources") or []
    if body["input"]["action"]["operation"] == "FilterColumns" and items:
        items = items[0]["table"]["columns"]
    answer = plugin.read(route, response.status_code, response.content, items=len(items))
    assert answer == oracle(stack, route, body)
    return answer


def test_corpus_has_117_requests():
    assert len(RECORDS) == UPSTREAM_REQUESTS == 117


@pytest.mark.parametrize(("name", "record"), RECORDS, ids=[n for n, _ in RECORDS])
def test_replay(stack, client, name, record):
    replay(stack, client, record)


@pytest.mark.parametrize(("name", "record"), RECORDED_RECORDS, ids=[n for n, _ in RECORDED_RECORDS])
def test_replay_trino_476(recorded, name, record):
    replay(*recorded, record)


def test_recorded_bodies_meet_denials_row_filters_and_masks(recorded):
    stack, _ = recorded
    answers: dict[str, list] = {}
    for _, record in RECORDED_RECORDS:
        route = endpoint(record)
        answers.setdefault(route, []).append(oracle(stack, route, record["request"]))
    assert set(answers["allow"]) == {True, False}
    assert [] in answers["batch"] and any(answers["batch"])
    for route in ("rowFilters", "columnMask", "batchColumnMasks"):
        assert None in answers[route] or [] in answers[route], route
        assert any(answers[route]), route


def test_replay_answers_are_not_all_the_same(stack, client):
    answers = set()
    for _, record in RECORDS:
        if endpoint(record) == "allow":
            answers.add(
                client.post("/v1/data/trino/allow", json=record["request"]).json()["result"]
            )
    assert answers == {True, False}


def test_query_id_is_not_part_of_the_cache_key(stack, client):
    body = {
        "input": {
            "context": {
                "identity": {"user": "cache-probe", "groups": ["some-group"]},
                "softwareStack": {"trinoVersion": "480"},
                "queryId": "q0",
            },
            "action": {
                "operation": "SelectFromColumns",
                "resource": {
                    "table": {
                        "catalogName": "my_catalog",
                        "schemaName": "my_schema",
                        "tableName": "my_table",
                        "columns": ["a"],
                    }
                },
            },
        }
    }
    assert client.post("/v1/data/trino/allow", json=body).json() == {"result": True}
    key = single_key(body)
    for n in range(1, 30):
        body["input"]["context"]["queryId"] = f"q{n}"
        assert client.post("/v1/data/trino/allow", json=body).json() == {"result": True}
        assert single_key(body) == key
