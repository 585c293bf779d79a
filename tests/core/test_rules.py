"""The rules of decisions.md sections 3 and 4 on a hand-built view, one behaviour per test."""

from __future__ import annotations

import re

import pytest

from pdp.core import (
    OPERATIONS,
    Access,
    CatalogRef,
    FunctionRef,
    Identity,
    PolicyGrant,
    Registry,
    Request,
    SchemaRef,
    Settings,
    TableRef,
    UserRef,
    View,
    decide,
)
from pdp.core.model import ALL_ACCESS, table_key
from tests.support import corpus

ALICE = Identity("alice", frozenset({"analysts"}))
ORDERS = TableRef("hive", "sales", "orders")
LEDGER = TableRef("hive", "finance", "ledger")
REGISTRY = Registry.of({ORDERS.key, LEDGER.key})
READ_ORDERS = {ORDERS.key: (PolicyGrant("p-read", Access.READ),)}
CLOSED = frozenset({Access.CREATE, Access.OWN, Access.WRITE})  # everything but READ


def view(grants=None, **settings) -> View:
    return View(Settings(**settings), REGISTRY, READ_ORDERS if grants is None else grants)


def run(operation, resource=None, target=None, identity=ALICE, **kw):
    return decide(view(**kw), Request(identity, operation, resource, target))


def test_every_operation_the_plugin_sends_is_known():
    """The plugin's own tests (Trino 478-484) send all 64 names; Trino 476 sends no other."""
    assert len(OPERATIONS) == 64
    assert corpus.operations(corpus.UPSTREAM, corpus.UPSTREAM_REQUESTS) == OPERATIONS.keys()
    assert corpus.operations(corpus.RECORDED, corpus.RECORDED_REQUESTS) <= OPERATIONS.keys()


def test_unknown_operation_is_denied_not_raised():
    decision = run("DropEverything", ORDERS)
    assert not decision.allowed and decision.rule == "unknown-operation"


def test_admin_bypasses_every_rule():
    admin = re.compile("svc_.*")
    for operation in ("DropTable", "ReadSystemInformation", "DropCatalog"):
        resource = CatalogRef("hive") if operation == "DropCatalog" else ORDERS
        decision = run(operation, resource, identity=Identity("svc_etl"), grants={}, admin=admin)
        assert decision.allowed and decision.rule == "admin"


def test_admin_regex_matches_the_whole_name():
    assert not run(
        "ReadSystemInformation", identity=Identity("svc_etl_x"), admin=re.compile("svc_etl")
    ).allowed


@pytest.mark.parametrize(
    ("operation", "resource", "allowed"),
    [
        ("ExecuteQuery", None, True),
        ("SetSystemSessionProperty", None, True),
        ("ImpersonateUser", UserRef("alice"), True),
        ("ImpersonateUser", UserRef("bob"), False),
        ("ViewQueryOwnedBy", UserRef("alice"), True),
        ("KillQueryOwnedBy", UserRef("bob"), False),
        ("FilterViewQueryOwnedBy", UserRef("bob"), False),
        ("ReadSystemInformation", None, False),
        ("WriteSystemInformation", None, False),
    ],
)
def test_identity_checks(operation, resource, allowed):
    assert run(operation, resource).allowed is allowed


@pytest.mark.parametrize(
    "operation",
    [op for op, (_, a) in OPERATIONS.items() if a is Access.WRITE and op != "ExecuteProcedure"],
)
def test_write_operations_need_write(operation):
    assert not run(operation, ORDERS).allowed
    assert run(operation, ORDERS, grants={ORDERS.key: (PolicyGrant("w", Access.WRITE),)}).allowed


def test_create_or_replace_of_a_data_source_needs_own_on_it():
    assert run("CreateTable", TableRef("hive", "sales", "fresh")).allowed
    assert not run("CreateTable", ORDERS).allowed  # exists and is registered: OWN, not CREATE


def test_rename_needs_own_on_source_and_create_for_target():
    unregistered = TableRef("hive", "sales", "tmp")
    target = TableRef("hive", "sales", "tmp2")
    assert run("RenameTable", unregistered, target).allowed
    assert not run(
        "RenameTable", unregistered, target, non_datasource_operations=CLOSED - {Access.CREATE}
    ).allowed
    assert not run("RenameTable", ORDERS, target).allowed


def test_dropping_a_schema_needs_own_on_every_data_source_inside():
    own = {ORDERS.key: (PolicyGrant("w", Access.WRITE),)}
    kw = {"datasource_operations": ALL_ACCESS - {Access.CREATE}}
    from pdp.core.model import AccessGrantMapping

    mapping = AccessGrantMapping(write=frozenset({Access.READ, Access.WRITE, Access.OWN}))
    assert run("DropSchema", SchemaRef("hive", "sales"), grants=own, mapping=mapping, **kw).allowed
    assert not run(
        "DropSchema", SchemaRef("hive", "finance"), grants=own, mapping=mapping, **kw
    ).allowed
    assert not run("DropCatalog", CatalogRef("hive"), grants=own, mapping=mapping, **kw).allowed
    assert run("DropSchema", SchemaRef("hive", "empty")).allowed


def test_rename_schema_also_needs_create_for_the_target():
    closed_create = ALL_ACCESS - {Access.CREATE}
    decision = run(
        "RenameSchema",
        SchemaRef("hive", "empty"),
        SchemaRef("hive", "new"),
        non_datasource_operations=closed_create,
    )
    assert not decision.allowed and "CREATE" in decision.reason


@pytest.mark.parametrize(
    ("operation", "access"),
    [
        ("ExecuteFunction", Access.READ),
        ("ExecuteProcedure", Access.WRITE),
        ("DropFunction", Access.OWN),
        ("CreateFunction", Access.CREATE),
    ],
)
def test_functions_follow_the_non_datasource_rule(operation, access):
    fn = FunctionRef("hive", "sales", "f")
    assert run(operation, fn).allowed
    assert not run(operation, fn, non_datasource_operations=ALL_ACCESS - {access}).allowed


def test_closed_cluster_still_shows_containers_holding_readable_data_sources():
    closed = {"non_datasource_operations": CLOSED}
    assert run("AccessCatalog", CatalogRef("hive"), **closed).allowed
    assert run("FilterSchemas", SchemaRef("hive", "sales"), **closed).allowed
    assert not run("FilterSchemas", SchemaRef("hive", "finance"), **closed).allowed
    assert not run("ShowSchemas", CatalogRef("iceberg"), **closed).allowed
    assert run("ShowTables", SchemaRef("iceberg", "x")).allowed  # READ open for non-data-sources


@pytest.mark.parametrize(
    ("operation", "table", "allowed"),
    [
        ("SelectFromColumns", TableRef("hive", "information_schema", "tables"), True),
        ("SelectFromColumns", TableRef("system", "jdbc", "columns"), True),
        ("SelectFromColumns", TableRef("system", "metadata", "catalogs"), True),
        ("SelectFromColumns", TableRef("system", "runtime", "queries"), False),
        ("InsertIntoTable", TableRef("hive", "information_schema", "tables"), False),
        ("SelectFromColumns", TableRef("hive", "sales", "information_schema"), False),
    ],
)
def test_metadata_tables_are_readable_because_trino_filters_their_rows(operation, table, allowed):
    closed = {"non_datasource_operations": frozenset()}
    decision = run(operation, table, **closed)
    assert decision.allowed is allowed
    assert (decision.rule == "metadata") is allowed


def test_visibility_requires_read_to_be_allowed_on_data_sources_too():
    decision = run(
        "AccessCatalog",
        CatalogRef("hive"),
        non_datasource_operations=CLOSED,
        datasource_operations=frozenset({Access.WRITE}),
    )
    assert not decision.allowed


def test_names_are_compared_case_insensitively():
    assert not run("SelectFromColumns", TableRef("HIVE", "Sales", "ORDERS"), grants={}).allowed
    assert table_key("HIVE", "Sales", "ORDERS") == ORDERS.key


def test_wrong_resource_kind_is_denied():
    decision = run("SelectFromColumns", CatalogRef("hive"))
    assert not decision.allowed and decision.rule == "malformed"


def test_data_policies_answer_no_filter_and_no_mask():
    assert run("GetRowFilters", ORDERS).rule == "no-data-policy"


# While the PDP's store is unreachable and no snapshot of it is saved, the registry is
# incomplete: any object it does not list may be one of the store's data sources. Those are
# denied (`store-unknown`) instead of falling under the wide non-data-source rule; the listed
# data sources keep their rules, and Trino's own `system` catalog (never a store's) its own.
INCOMPLETE = Registry.of({ORDERS.key, LEDGER.key}, complete=False)
TPCH = TableRef("tpch", "tiny", "nation")
SYSTEM_TABLE = TableRef("system", "runtime", "nodes")


@pytest.mark.parametrize(
    ("operation", "resource", "allowed", "rule"),
    [
        ("SelectFromColumns", ORDERS, True, "data-source"),  # declared: its policy grants
        ("InsertIntoTable", ORDERS, False, "data-source"),
        ("SelectFromColumns", TPCH, False, "store-unknown"),  # complete: non-data-source, allowed
        ("InsertIntoTable", TPCH, False, "store-unknown"),
        ("CreateTable", TableRef("hive", "sales", "new"), False, "store-unknown"),
        ("CreateSchema", SchemaRef("tpch", "x"), False, "store-unknown"),
        ("DropSchema", SchemaRef("tpch", "tiny"), False, "store-unknown"),
        ("RenameTable", TableRef("tpch", "tiny", "a"), False, "store-unknown"),
        ("ExecuteFunction", FunctionRef("tpch", "tiny", "f"), False, "store-unknown"),
        ("AccessCatalog", CatalogRef("hive"), True, "visible"),  # holds readable orders
        ("AccessCatalog", CatalogRef("tpch"), False, "store-unknown"),
        ("ShowTables", SchemaRef("hive", "finance"), False, "store-unknown"),
        ("SelectFromColumns", SYSTEM_TABLE, True, "non-data-source"),
        ("AccessCatalog", CatalogRef("system"), True, "non-data-source"),
        ("SelectFromColumns", TableRef("tpch", "information_schema", "tables"), True, "metadata"),
    ],
)
def test_an_incomplete_registry_denies_what_it_does_not_list(operation, resource, allowed, rule):
    incomplete = View(Settings(), INCOMPLETE, READ_ORDERS)
    decision = decide(incomplete, Request(ALICE, operation, resource))
    assert (decision.allowed, decision.rule) == (allowed, rule), decision.reason
    complete = decide(View(Settings(), REGISTRY, READ_ORDERS), Request(ALICE, operation, resource))
    if rule == "store-unknown":  # the same request on a complete registry: the wide rule
        assert complete.allowed and complete.rule in ("non-data-source", "visible")
