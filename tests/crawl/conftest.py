"""Fixtures of the crawler tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from devstack.postgres import Postgres


@pytest.fixture
def db(pg: Postgres) -> Iterator[str]:
    name = f"crawl_{secrets.token_hex(4)}"
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with pg.connect(name) as conn:
        conn.execute("CREATE SCHEMA sales")
        conn.execute("CREATE TABLE sales.orders (id int NOT NULL, total numeric(10, 2), note text)")
        conn.execute("CREATE VIEW sales.big AS SELECT id FROM sales.orders WHERE total > 100")
        conn.execute(
            "CREATE MATERIALIZED VIEW sales.totals AS SELECT sum(total) AS s FROM sales.orders"
        )
        conn.execute("CREATE TABLE sales.events (at date NOT NULL) PARTITION BY RANGE (at)")
    yield name
    with pg.connect() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
