"""Row filters and column masks served by the real sidecar over HTTP, decided from the
per-user view it fetched from the real PDP: the plugin's exact shapes, the same answers as the
pure core, caching without queryId, a policy edit taking effect, admins exempt."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pdp.core.datapolicy import column_mask, row_filters
from pdp.core.model import (
    AccessGrantMapping,
    Identity,
    MaskKind,
    MaskRule,
    Registry,
    table_key,
)
from pdp.wire import datapolicy, proto
from tests.conftest import Stack, start_stack
from tests.support import plugin

REGISTRY = """
connections:
  - name: w
    technology: trino
    status: active
    databases:
      - name: hive
        schemas:
          - name: crm
            tables:
              - name: customers
                columns: {email: [PII.Email], ssn: [PII], salary: [Pay]}
              - orders
"""
POLICIES = """
policies:
  - {name: readers, access: READ, who: {anyone: true}, what: {schemas: [w.hive.crm]}}
masks:
  - {name: pii-hash, columns: {tags: [PII]}, mask: hash, exceptFor: {groups: [privacy]}}
  - {name: ssn-null, columns: {names: [ssn]}, mask: null}
  - {name: pay-round, columns: {tags: [Pay]}, mask: {round: -3}}
rowFilters:
  - name: own-region
    what: {dataSources: [w.hive.crm.orders]}
    where: "region IN @attribute(region) AND owner <> @user"
  - {name: live, what: {dataSources: [w.hive.crm.orders]}, where: "deleted = false"}
"""
USERS = """
users:
  alice: {attributes: {region: [emea, "o'brien'); DROP TABLE x; --"]}}
"""
PROPERTIES = """
immuta.allowed.immuta.datasource.operations=READ,WRITE
immuta.allowed.non.immuta.datasource.operations=READ
immuta.user.admin=admin
"""


def started(root: Path, policies: str = POLICIES) -> Iterator[Stack]:
    """The real PDP and sidecar on this file's registry, users and cluster properties, and
    `policies`; stopped afterwards."""
    running = start_stack(
        root, registry=REGISTRY, policies=policies, users=USERS, properties=PROPERTIES
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from started(tmp_path_factory.mktemp("datapolicies"))


@pytest.fixture(scope="module")
def client(stack):
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


def context(user, groups=(), query_id="q1"):
    return {
        "identity": {"user": user, "groups": list(groups)},
        "softwareStack": {"trinoVersion": "476"},
        "queryId": query_id,
    }


def row_filter_body(user, table="orders", groups=(), query_id="q1"):
    return {
        "input": {
            "context": context(user, groups, query_id),
            "action": {
                "operation": "GetRowFilters",
                "resource": {
                    "table": {"catalogName": "hive", "schemaName": "crm", "tableName": table}
                },
            },
        }
    }


COLUMNS = [
    ("id", "bigint"),
    ("email", "varchar"),
    ("ssn", "varchar(11)"),
    ("salary", "integer"),
    ("note", "array(varchar)"),
]


def column(name, type_):
    return {
        "column": {
            "catalogName": "hive",
            "schemaName": "crm",
            "tableName": "customers",
            "columnName": name,
            "columnType": type_,
        }
    }


def batch_body(user, groups=(), columns=COLUMNS, query_id="q1"):
    return {
        "input": {
            "context": context(user, groups, query_id),
            "action": {
                "operation": "GetColumnMask",
                "filterResources": [column(n, t) for n, t in columns],
            },
        }
    }


def single_body(user, name, type_, groups=()):
    return {
        "input": {
            "context": context(user, groups),
            "action": {"operation": "GetColumnMask", "resource": column(name, type_)},
        }
    }


def post(client, endpoint, body):
    response = client.post(f"/v1/data/trino/{endpoint}", json=body)
    assert response.status_code == 200, response.text
    return response


def test_row_filters_in_the_plugins_shape(stack, client):
    response = post(client, "rowFilters", row_filter_body("alice"))
    assert response.json() == {
        "result": [
            {"expression": "(deleted = false)"},
            {
                "expression": "(region IN ('emea', 'o''brien''); DROP TABLE x; --') "
                "AND owner <> 'alice')"
            },
        ]
    }
    assert plugin.read("rowFilters", 200, response.content) == response.json()["result"]


def test_a_user_without_the_attribute_sees_no_rows(client):
    result = post(client, "rowFilters", row_filter_body("bob")).json()["result"]
    assert {"expression": "(region IN (NULL) AND owner <> 'bob')"} in result


def test_unfiltered_table_and_admin(client):
    assert post(client, "rowFilters", row_filter_body("alice", "customers")).json() == {
        "result": []
    }
    assert post(client, "rowFilters", row_filter_body("admin")).json() == {"result": []}


def test_batch_masks_in_the_plugins_shape(client):
    response = post(client, "batchColumnMasks", batch_body("alice"))
    result = response.json()["result"]
    assert [item["index"] for item in result] == [1, 2, 3]
    expressions = {item["index"]: item["viewExpression"]["expression"] for item in result}
    assert expressions[1] == 'CAST(to_hex(sha256(to_utf8("email"))) AS varchar)'
    assert expressions[2] == "CAST(NULL AS varchar(11))"  # NULL beats hash
    assert expressions[3].startswith('CASE WHEN round(CAST("salary" AS decimal(38, 0)), -3)')
    assert all(set(item) == {"index", "viewExpression"} for item in result)
    assert plugin.read("batchColumnMasks", 200, response.content, items=len(COLUMNS)) is not None


def test_group_exception_and_admin(client):
    result = post(client, "batchColumnMasks", batch_body("carol", ["privacy"])).json()["result"]
    assert [item["index"] for item in result] == [2, 3]
    assert post(client, "batchColumnMasks", batch_body("admin")).json() == {"result": []}


def test_single_column_mask(client):
    assert post(client, "columnMask", single_body("alice", "ssn", "varchar(11)")).json() == {
        "result": {"expression": "CAST(NULL AS varchar(11))"}
    }
    assert post(client, "columnMask", single_body("alice", "id", "bigint")).json() == {
        "result": None
    }


def test_answers_equal_the_pure_core(stack, client):
    snapshot, settings = stack.tree.snapshot(), stack.tree.settings()
    for user, groups in (("alice", ()), ("carol", ("privacy",)), ("admin", ())):
        identity = Identity(user, frozenset(groups))
        view = snapshot.view(settings, identity)
        result = post(client, "batchColumnMasks", batch_body(user, groups)).json()["result"]
        expected = []
        for i, (name, type_) in enumerate(COLUMNS):
            mask = column_mask(view, identity, table_key("hive", "crm", "customers"), name, type_)
            if mask is not None:
                expected.append({"index": i, "viewExpression": {"expression": mask.expression}})
        assert result == expected
        filters = row_filters(view, identity, table_key("hive", "crm", "orders"))
        answer = post(client, "rowFilters", row_filter_body(user, groups=groups)).json()
        assert answer == {"result": [{"expression": f.expression} for f in filters]}


def test_query_id_is_not_part_of_the_cache_key(client):
    # /health no longer reports per-worker cache sizes; the keys themselves must agree
    masks = {datapolicy.masks_key(batch_body("dave", query_id=q), True) for q in "abc"}
    filters = {datapolicy.row_filters_key(row_filter_body("dave", query_id=q)) for q in "abc"}
    assert len(masks) == 1 and None not in masks
    assert len(filters) == 1 and None not in filters
    # and the answers for the three queries are the same
    answers = {post(client, "batchColumnMasks", batch_body("dave", query_id=q)).text for q in "abc"}
    assert len(answers) == 1


def test_wrong_bodies_are_400(client):
    body = batch_body("alice")
    body["input"]["action"]["filterResources"][0]["column"]["columnType"] = 7
    assert client.post("/v1/data/trino/batchColumnMasks", json=body).status_code == 400
    body = row_filter_body("alice")
    body["input"]["action"]["operation"] = "GetColumnMask"
    assert client.post("/v1/data/trino/rowFilters", json=body).status_code == 400
    assert client.post("/v1/data/trino/columnMask", json=batch_body("a")).status_code == 400


def test_empty_batch(client):
    assert post(client, "batchColumnMasks", batch_body("alice", columns=[])).json() == {
        "result": []
    }


def test_a_policy_edit_changes_the_answers(stack, client):
    assert post(client, "batchColumnMasks", batch_body("erin")).json()["result"]
    stack.tree.write("policies.yaml", POLICIES.replace("mask: hash", "mask: {constant: x}"))
    deadline = time.monotonic() + 10
    expected = "CAST('x' AS varchar)"
    while time.monotonic() < deadline:
        result = post(client, "batchColumnMasks", batch_body("erin")).json()["result"]
        if result[0]["viewExpression"]["expression"] == expected:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the edit did not reach the sidecar")
    stack.tree.write("policies.yaml", POLICIES)


def test_data_policies_survive_the_wire():
    t1, t2 = table_key("a", "b", "c"), table_key("a", "b", "d")
    m = MaskRule("m", MaskKind.CONSTANT, frozenset({"x"}), frozenset({"pii"}), 1.5, 0)
    r = MaskRule("r", MaskKind.KEEP_LAST, frozenset({"y"}), frozenset(), None, 4)
    columns = {t1: {"x": frozenset({"pii", "pii.email"})}}
    registry = Registry.of({t1, t2}, columns, {t1: (m, r), t2: (m,)}, {t2: ("f", "g")})
    message = proto.registry_to_pb("rev", registry, AccessGrantMapping())
    assert len(message.masks) == 2  # each rule once, with its tables
    back, _ = proto.registry_from_pb(message)
    assert back.masks == registry.masks and back.filters == registry.filters
    assert back.columns == registry.columns
    entitlements = proto.entitlements_to_pb("rev", {}, frozenset({"m"}), {"f": "(x IN ('a'))"})
    assert proto.data_policies_from_pb(entitlements) == (frozenset({"m"}), {"f": "(x IN ('a'))"})


def select_body(user, table):
    return {
        "input": {
            "context": context(user),
            "action": {
                "operation": "SelectFromColumns",
                "resource": {
                    "table": {
                        "catalogName": "hive",
                        "schemaName": "crm",
                        "tableName": table,
                        "columns": ["id"],
                    }
                },
            },
        }
    }


def test_a_cluster_that_does_not_ask_for_data_policies_denies_reading_through_them(stack, client):
    """Trino configured without the row-filter and mask URIs would read these tables unmasked
    and unfiltered: once the cluster properties say so, such reads are denied, live."""

    def allowed(user, table):
        return post(client, "allow", select_body(user, table)).json()["result"]

    def settle(expected):
        deadline = time.monotonic() + 10
        while allowed("alice", "customers") is not expected:
            assert time.monotonic() < deadline, "the properties edit did not reach the sidecar"
            time.sleep(0.05)

    assert allowed("alice", "customers") and allowed("alice", "orders")
    stack.tree.write("cluster.properties", PROPERTIES + "pdp.trino.data.policy.uris=absent\n")
    try:
        settle(False)
        assert not allowed("alice", "orders")  # row filters
        assert allowed("admin", "customers")  # admins get no data policies
    finally:
        stack.tree.write("cluster.properties", PROPERTIES)
    settle(True)
