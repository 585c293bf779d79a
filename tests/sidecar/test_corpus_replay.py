"""Every request body of the plugin corpus, sent to the real sidecar over HTTP.

Each answer must be one the plugin reads without error (tests/support/plugin.py, itself checked
against the corpus's response cases), and must equal the pure core's decision on the same body.
"""

from __future__ import annotations

import json

import httpx
import pytest

from pdp.core import decide
from pdp.wire.trino import decode, single_key
from tests.conftest import start_stack
from tests.support import plugin
from tests.support.corpus import ENDPOINTS, requests

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


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(
        tmp_path_factory.mktemp("corpus"),
        registry=REGISTRY,
        policies=POLICIES,
        users="users: {}\n",
        properties=PROPERTIES,
    )
    yield running
    running.sidecar.stop()
    running.pdp.stop()


@pytest.fixture(scope="module")
def client(stack):
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


def oracle(stack, endpoint: str, body: dict):
    """What the plugin should end up with, computed by the pure core in this process."""
    call = decode(json.dumps(body).encode())
    view = stack.tree.snapshot().view(stack.tree.settings(), call.identity)
    if endpoint == "allow":
        return decide(view, call.request()).allowed
    if endpoint == "batch":
        if call.operation == "FilterColumns":
            allowed = decide(view, call.request(call.items[0])).allowed
            return list(range(len(call.columns))) if allowed else []
        return [i for i, r in enumerate(call.items) if decide(view, call.request(r)).allowed]
    return {"rowFilters": [], "columnMask": None, "batchColumnMasks": []}[endpoint]


def test_corpus_has_117_requests():
    assert len(RECORDS) == 117


@pytest.mark.parametrize(("name", "record"), RECORDS, ids=[n for n, _ in RECORDS])
def test_replay(stack, client, name, record):
    endpoint = ENDPOINTS[record.get("endpoint_property")]
    body = record["request"]
    response = client.post(f"/v1/data/trino/{endpoint}", json=body)
    assert response.status_code == 200, response.text
    items = body["input"]["action"].get("filterResources") or []
    if body["input"]["action"]["operation"] == "FilterColumns" and items:
        items = items[0]["table"]["columns"]
    answer = plugin.read(endpoint, response.status_code, response.content, items=len(items))
    assert answer == oracle(stack, endpoint, body)


def test_replay_answers_are_not_all_the_same(stack, client):
    answers = set()
    for _, record in RECORDS:
        if ENDPOINTS[record.get("endpoint_property")] == "allow":
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
