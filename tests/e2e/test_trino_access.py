"""What users see through a real Trino whose OPA access control asks the sidecar: listings,
reads, writes, DDL, the admin bypass and groups, under the e2e policies (conftest.py)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import E2E

EVERY_CATALOG = {"memory", "tpch", "postgresql", "system"}


def test_catalogs_schemas_and_tables_are_listed_as_each_user_may_see_them(e2e: E2E) -> None:
    # unregistered data is readable under these cluster properties, so every catalog shows
    assert e2e.column("alice", "SHOW CATALOGS") == EVERY_CATALOG
    assert e2e.column("carol", "SHOW SCHEMAS FROM memory") >= {"sales", "hr"}
    # SHOW TABLES: a registered table only where a policy grants READ; unregistered ones too
    assert e2e.column("alice", "SHOW TABLES FROM memory.sales") == {"orders", "scratch"}
    assert e2e.column("bob", "SHOW TABLES FROM memory.sales") == {"orders", "scratch"}
    assert e2e.column("carol", "SHOW TABLES FROM memory.sales") == {"scratch"}
    assert e2e.column("dana", "SHOW TABLES FROM memory.hr") == {"salaries"}
    assert e2e.column("carol", "SHOW TABLES FROM memory.hr") == set()
    assert e2e.column("admin", "SHOW TABLES FROM memory.sales") == {
        "orders",
        "customers",
        "scratch",
    }
    assert e2e.column("carol", "SHOW TABLES FROM postgresql.public") == {"payments", "notes"}


def test_information_schema_is_filtered_the_same_way(e2e: E2E) -> None:
    tables = "SELECT table_name FROM memory.information_schema.tables WHERE table_schema = 'sales'"
    assert e2e.column("alice", tables) == {"orders", "scratch"}
    assert e2e.column("carol", tables) == {"scratch"}
    columns = (
        "SELECT table_name || '.' || column_name FROM memory.information_schema.columns "
        "WHERE table_schema = 'sales'"
    )
    assert e2e.column("alice", columns) == {
        "orders.id",
        "orders.region",
        "orders.amount",
        "scratch.x",
    }
    assert e2e.column("carol", columns) == {"scratch.x"}


@pytest.mark.parametrize(
    ("user", "table", "allowed"),
    [
        ("alice", "memory.sales.orders", True),  # group analysts (from Trino's group file)
        ("bob", "memory.sales.orders", True),  # WRITE maps to READ too
        ("carol", "memory.sales.orders", False),  # registered, no policy
        ("alice", "memory.sales.customers", False),  # registered, no policy for anyone
        ("carol", "memory.sales.scratch", True),  # unregistered: READ allowed by the cluster
        ("dana", "memory.hr.salaries", True),  # attribute department=finance, tag Finance.*
        ("alice", "memory.hr.salaries", False),
        ("erin", "memory.sales.orders", False),  # in a group, but not the granted one
        ("carol", "tpch.tiny.nation", True),  # a whole unregistered catalog
        ("alice", "postgresql.public.accounts", True),  # registered through a PG connection
        ("bob", "postgresql.public.payments", False),
    ],
)
def test_select(e2e: E2E, user: str, table: str, allowed: bool) -> None:
    sql = f"SELECT count(*) FROM {table}"
    if allowed:
        assert e2e.query(user, sql)[0][0] >= 1
    else:
        error = e2e.denied(user, sql)
        assert table.split(".")[-1] in error.message


def test_a_read_policy_does_not_allow_writes_and_a_write_policy_does(e2e: E2E) -> None:
    e2e.denied("alice", "INSERT INTO memory.sales.orders VALUES (9, 'emea', 1.0)")
    e2e.denied("alice", "INSERT INTO postgresql.public.accounts VALUES (9, 'al', 1)")
    e2e.denied("alice", "DELETE FROM postgresql.public.accounts WHERE id = 1")
    e2e.denied("carol", "DELETE FROM postgresql.public.accounts WHERE id = 1")

    assert e2e.query("bob", "INSERT INTO memory.sales.orders VALUES (4, 'emea', 9.0)") == [[1]]
    assert e2e.query("bob", "INSERT INTO postgresql.public.accounts VALUES (9, 'bo', 1)") == [[1]]
    assert e2e.query("bob", "DELETE FROM postgresql.public.accounts WHERE id = 9") == [[1]]
    assert e2e.query("alice", "SELECT count(*) FROM memory.sales.orders") == [[4]]


def test_dropping_or_altering_a_data_source_needs_own(e2e: E2E) -> None:
    # bob may write orders, but WRITE does not map to OWN under the default mapping
    e2e.denied("bob", "ALTER TABLE memory.sales.orders ADD COLUMN note varchar")
    e2e.denied("bob", "DROP TABLE memory.sales.orders")
    e2e.denied("bob", "ALTER TABLE memory.sales.orders RENAME TO memory.sales.orders2")
    # unregistered space: CREATE and OWN are allowed by the cluster properties
    e2e.query("carol", "CREATE TABLE memory.sales.carol_tmp (x integer)")
    e2e.query("carol", "ALTER TABLE memory.sales.carol_tmp ADD COLUMN y integer")
    e2e.query("carol", "DROP TABLE memory.sales.carol_tmp")
    # a schema holding data sources is dropped only by who may own all of them
    e2e.denied("bob", "DROP SCHEMA memory.sales CASCADE")


@pytest.mark.parametrize(
    ("user", "admin"),
    [("admin", True), ("svc_etl", True), ("svc_ETL", False), ("xadmin", False), ("svc_", False)],
)
def test_users_matching_immuta_user_admin_bypass_policies(e2e: E2E, user: str, admin: bool) -> None:
    sql = "SELECT count(*) FROM memory.sales.customers"  # registered, no policy grants it
    if admin:
        assert e2e.query(user, sql) == [[2]]
    else:
        e2e.denied(user, sql)
