"""SelectFromColumns is decided per table (sidecar/compact.py's contract, which the product's
plugin keys its cache by): the sidecar gives the same answer for any set of the table's columns,
none and unknown ones included, whether its cluster's Trino asks for data policies or not, and
no column of the ask reaches the decision at all. FilterColumns is all of a table's columns or
none, as FilterTables answers the table (the plugin answers a listing's FilterColumns from the
same listing's FilterTables)."""

from __future__ import annotations

import itertools

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pdp.wire.trino import decode_document
from tests.conftest import start_stack
from tests.sidecar.test_data_policies import COLUMNS, REGISTRY, USERS

DECISIONS = "/v1/pdp/decisions"
ORDERS = "              - orders\n"  # the registry's line of orders; ledger goes after it
TABLES = ["customers", "orders", "ledger", "elsewhere"]  # masked, filtered, no grant, no source
POLICIES = """
policies:
  - name: readers
    access: READ
    who: {anyone: true}
    what: {dataSources: [w.hive.crm.customers, w.hive.crm.orders]}
masks:
  - {name: pii-hash, columns: {tags: [PII]}, mask: hash, exceptFor: {groups: [privacy]}}
  - {name: pay-round, columns: {tags: [Pay]}, mask: {round: -3}}
rowFilters:
  - {name: live, what: {dataSources: [w.hive.crm.orders]}, where: "deleted = false"}
"""
PROPERTIES = """
immuta.allowed.immuta.datasource.operations=READ,WRITE
immuta.allowed.non.immuta.datasource.operations=READ
immuta.user.admin=admin
"""
# (user, groups): masks apply; some masks waived; an admin
IDENTITIES = [("alice", []), ("pat", ["privacy"]), ("admin", [])]
NAMES = [name for name, _ in COLUMNS] + ["not_a_column"]
# every subset of the columns (the empty one included), then no `columns` key at all
SUBSETS: list[list[str] | None] = [
    list(subset) for n in range(len(NAMES) + 1) for subset in itertools.combinations(NAMES, n)
]
SUBSETS.append(None)


@pytest.fixture(scope="module", params=["configured", "absent"])
def client(request, tmp_path_factory):
    """A sidecar whose cluster's Trino asks for data policies, and one whose Trino does not
    (there a data policy on the table turns a read into a denial)."""
    stack = start_stack(
        tmp_path_factory.mktemp(f"columns-{request.param}"),
        registry=REGISTRY.replace(ORDERS, ORDERS + ORDERS.replace("orders", "ledger")),
        policies=POLICIES,
        users=USERS,
        properties=PROPERTIES + f"pdp.trino.data.policy.uris={request.param}\n",
    )
    try:
        with httpx.Client(base_url=stack.url, timeout=10) as c:
            yield c
    finally:
        stack.sidecar.stop()
        stack.pdp.stop()


def select(table: str, columns: list[str] | None) -> dict[str, object]:
    found: dict[str, object] = {"catalogName": "hive", "schemaName": "crm", "tableName": table}
    if columns is not None:
        found["columns"] = columns
    return {"operation": "SelectFromColumns", "resource": {"table": found}}


@pytest.mark.parametrize(("user", "groups"), IDENTITIES)
@pytest.mark.parametrize("table", TABLES)
def test_select_from_columns_has_one_answer_per_table_whatever_the_columns(
    client, user, groups, table
) -> None:
    identity = {"user": user, "groups": groups}
    body = {"identity": identity, "asks": [select(table, columns) for columns in SUBSETS]}
    response = client.post(DECISIONS, json=body)
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["revision"] is not None  # answers to keep, per table, for the whole revision
    answers = found["answers"]
    assert len(answers) == len(SUBSETS)
    assert all(answer == answers[0] for answer in answers), answers
    # and the stock plugin's ask (the query's columns) at the OPA endpoint agrees
    opa = {"input": {"context": {"identity": identity}, "action": select(table, ["id", "ssn"])}}
    allowed = client.post("/v1/data/trino/allow", json=opa).json()["result"]
    assert answers[0]["allowed"] is allowed


def test_the_decisions_differ_between_tables_and_users(client) -> None:
    """The table above would also pass if every answer were the same: it is not."""
    seen = set()
    for (user, groups), table in itertools.product(IDENTITIES, TABLES):
        body = {"identity": {"user": user, "groups": groups}, "asks": [select(table, None)]}
        seen.add(client.post(DECISIONS, json=body).json()["answers"][0]["allowed"])
    assert seen == {True, False}


@given(columns=st.lists(st.text(min_size=1, max_size=20), max_size=8))
def test_no_column_reaches_the_decision(columns: list[str]) -> None:
    def request(ask: dict[str, object]) -> object:
        document = {"input": {"context": {"identity": {"user": "u"}}, "action": ask}}
        return decode_document(document).request()

    assert request(select("customers", columns)) == request(select("customers", None))


def tables(names: list[str]) -> dict[str, object]:
    found = [{"table": {"catalogName": "hive", "schemaName": "crm", "tableName": n}} for n in names]
    return {"operation": "FilterTables", "filterResources": found}


def columns(table: str, names: list[str]) -> dict[str, object]:
    found = {"catalogName": "hive", "schemaName": "crm", "tableName": table, "columns": names}
    return {"operation": "FilterColumns", "filterResources": [{"table": found}]}


@pytest.mark.parametrize(("user", "groups"), IDENTITIES)
def test_filter_columns_is_all_or_none_as_filter_tables_answers_the_table(
    client, user, groups
) -> None:
    identity = {"user": user, "groups": groups}
    subsets = [subset for subset in SUBSETS if subset]  # Trino filters listed columns: 1 or more
    # a large request (through ASGI), then a small one (from memory once the user is held)
    for asked in (subsets, [NAMES]):
        asks = [tables(TABLES)] + [columns(t, names) for t in TABLES for names in asked]
        response = client.post(DECISIONS, json={"identity": identity, "asks": asks})
        assert response.status_code == 200, response.text
        first, *rest = response.json()["answers"]
        readable = {TABLES[i] for i in first["indices"]}
        expected = [
            {"indices": list(range(len(names))) if t in readable else []}
            for t in TABLES
            for names in asked
        ]
        assert rest == expected, (user, readable)


def test_filter_tables_answers_differ_between_tables_and_users(client) -> None:
    """The test above would also pass if every table were readable, or none: neither is so."""
    seen = set()
    for user, groups in IDENTITIES:
        body = {"identity": {"user": user, "groups": groups}, "asks": [tables(TABLES)]}
        indices = client.post(DECISIONS, json=body).json()["answers"][0]["indices"]
        seen |= {i in indices for i in range(len(TABLES))}
    assert seen == {True, False}
