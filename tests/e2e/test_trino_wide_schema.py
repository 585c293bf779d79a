"""A schema of more tables than the OPA plugin's HTTP client queues by default (1,024). Trino
sends an `information_schema.columns` listing's `FilterColumns` requests one per table, all at
once: with the default queue the listing fails for every user ("Failed to query OPA backend"),
so the plugin's queue is raised wherever the project configures Trino (devstack/trino.py, and
the README's "Pointing Trino at it")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import E2E

TABLES = 2_000


@pytest.fixture
def wide_schema(e2e: E2E) -> Iterator[str]:
    tables = "".join(f"CREATE TABLE wide.t{i:04d} (id int, name text);" for i in range(TABLES))
    with e2e.pg.connect(e2e.database) as conn:
        conn.execute("CREATE SCHEMA wide;" + tables)
    try:
        yield "wide"
    finally:
        with e2e.pg.connect(e2e.database) as conn:
            conn.execute("DROP SCHEMA wide CASCADE")


def test_the_columns_of_a_schema_wider_than_the_plugins_default_queue_are_listed(e2e, wide_schema):
    sql = (
        "SELECT count(DISTINCT table_name), count(*) FROM postgresql.information_schema.columns"
        f" WHERE table_schema = '{wide_schema}'"
    )
    # unregistered tables: every user may read them (the e2e cluster's properties)
    assert e2e.query("carol", sql) == [[TABLES, 2 * TABLES]]
    assert e2e.query("admin", sql) == [[TABLES, 2 * TABLES]]
