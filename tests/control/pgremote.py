"""A real PostgreSQL database for the control tests: a fresh database per test, changed with
real DDL, and a plain login role for the crawler (a superuser would see through every REVOKE)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devstack.postgres import Postgres
from pdp.control import CrawlerFactory, platform_crawlers
from pdp.crawl.network import NetworkPolicy
from pdp.objects import ObjectPath
from pdp.store import References, Store

KEY = "pg"
PASSWORD_ENV = "PDP_TEST_CRAWLER_PASSWORD"
# What the operator of these tests allows: the crawler's password by reference, and the
# devstack PostgreSQL on loopback (denied by the default network policy).
REFERENCES = References((PASSWORD_ENV,))
LOOPBACK = NetworkPolicy.of(allow=("127.0.0.0/8", "::1/128"))


def crawlers(store: Store) -> CrawlerFactory:
    """The service's crawler factory as these tests' operator configures it."""
    return platform_crawlers(store, REFERENCES, LOOPBACK)


@dataclass
class Remote:
    pg: Postgres
    database: str
    role: str
    password: str

    def ddl(self, *statements: str) -> None:
        with self.pg.connect(self.database) as conn:
            for statement in statements:
                conn.execute(statement)

    def path(self, *names: str) -> ObjectPath:
        return ObjectPath(KEY, (self.database, *names))


@pytest.fixture
def remote(pg: Postgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    """A fresh database with two schemas and four tables, and a login role that may read them
    (its password in the environment variable `PASSWORD_ENV`)."""
    token = secrets.token_hex(4)
    database, role, password = f"sync_{token}", f"crawler_{token}", secrets.token_hex(8)
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        admin.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
    made = Remote(pg, database, role, password)
    made.ddl(
        "CREATE SCHEMA sales",
        "CREATE SCHEMA hr",
        f"GRANT USAGE ON SCHEMA sales, hr TO {role}",
        "CREATE TABLE sales.orders (id int NOT NULL, total numeric(10, 2))",
        "CREATE TABLE sales.customers (id int NOT NULL, name text)",
        "CREATE TABLE sales.refunds (id int, order_id int)",
        "CREATE TABLE hr.people (id int, name text)",
    )
    monkeypatch.setenv(PASSWORD_ENV, password)
    try:
        yield made
    finally:
        with pg.connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def credentials(remote: Remote) -> dict[str, str]:
    return {"user": remote.role, "passwordEnv": PASSWORD_ENV}


def endpoint(remote: Remote) -> dict[str, object]:
    """The database alone: the cluster holds other tests' databases too."""
    return {"host": remote.pg.host, "port": remote.pg.port, "database": remote.database}
