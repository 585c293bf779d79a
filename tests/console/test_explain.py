"""What the Access page answers, as decision tables over policy files: the decision, the masks
and row filters that apply to the user, and who of the directory may read a table."""

from __future__ import annotations

import pytest

from devstack.configs import make_tree
from pdp.console.explain import ExplainBody, TableBody, explain, readers
from pdp.core.model import ClusterSettings

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
              - {name: customers, columns: {email: [PII.Email], ssn: [PII]}}
"""
POLICIES = """
policies:
  - {name: crm-readers, access: READ, who: {groups: [analysts]},
     what: {dataSources: [w.hive.crm.customers]}}
masks:
  - {name: pii-hash, columns: {tags: [PII]}, mask: hash, exceptFor: {users: [olga]}}
rowFilters:
  - {name: emea-only, what: {dataSources: [w.hive.crm.customers]}, where: "region = 'emea'",
     exceptFor: {users: [olga]}}
"""
USERS = """
users:
  alice: {groups: [analysts]}
  olga: {groups: [analysts]}
  bob: {}
"""
TABLE = {"catalog": "hive", "schema": "crm", "table": "customers"}


@pytest.fixture
def snapshot(tmp_path):  # type: ignore[no-untyped-def]
    return make_tree(tmp_path, registry=REGISTRY, policies=POLICIES, users=USERS).snapshot()


@pytest.mark.parametrize(
    ("user", "allowed", "policies", "masked", "filters"),
    [
        ("alice", True, ["crm-readers"], {"email": "pii-hash", "ssn": "pii-hash"}, ["emea-only"]),
        ("olga", True, ["crm-readers"], {}, []),  # excepted from both
        ("bob", False, [], {"email": "pii-hash", "ssn": "pii-hash"}, ["emea-only"]),
    ],
)
def test_the_decision_masks_and_filters_of_a_user(
    snapshot, user, allowed, policies, masked, filters
):
    answer = explain(snapshot, ClusterSettings(), ExplainBody(user=user, **TABLE))
    assert answer["allowed"] is allowed
    assert answer["policies"] == policies
    assert {m["column"]: m["policy"] for m in answer["masks"]} == masked
    assert [f["policy"] for f in answer["rowFilters"]] == filters


def test_who_may_read_a_table_and_through_which_policy(snapshot):
    answer = readers(snapshot, ClusterSettings(), TableBody(**TABLE))
    assert [(h["user"], h["policies"]) for h in answer["hits"]] == [
        ("alice", ["crm-readers"]),
        ("olga", ["crm-readers"]),
    ]


@pytest.mark.parametrize(
    ("column", "column_type", "sql"),
    [
        ("email", None, 'CAST(to_hex(sha256(to_utf8("email"))) AS varchar)'),  # varchar unless told
        ("email", "varchar(3)", "CAST(NULL AS varchar(3))"),  # too short for a hash: NULL
        (
            "ssn",
            "integer",
            'from_big_endian_32(substr(sha256(to_utf8(CAST("ssn" AS varchar))), 1, 4))',
        ),
    ],
)
def test_a_masks_sql_as_trino_would_apply_it_for_the_columns_type(
    snapshot, column, column_type, sql
):
    types = {column: column_type} if column_type else {}
    answer = explain(snapshot, ClusterSettings(), ExplainBody(user="alice", types=types, **TABLE))
    mask = {m["column"]: m for m in answer["masks"]}[column]
    assert mask["expression"] == sql
    assert mask["type"] == (column_type or "varchar")
    assert mask["kind"] == "hash" and "pii-hash" in mask["reason"]
