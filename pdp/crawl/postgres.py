"""PostgreSQL through psycopg 3: databases from `pg_database`, schemas from `pg_namespace`, the
tables of one schema from `pg_class` and all their columns from `pg_attribute` (one query each,
read through a server-side cursor a page at a time).

Endpoint: `{host, port?, database?, maintenanceDatabase?, sslmode?}` plus the common keys
(`exclude`, `timeout`, `pageSize`). Without `database`, every database the user may connect to
(templates and databases that refuse connections left out), found through
`maintenanceDatabase` (default `postgres`). Credentials: `{user, password | passwordEnv |
passwordFile}` (no password: the server's own means, trust or a client certificate; never the
PDP's own PGPASSWORD or .pgpass: pdp.platforms.postgresql). Under a network policy
(`pdp.crawl.network`) libpq connects to the address the policy checked, never to the name
again."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from pdp.config.secret import Secret
from pdp.crawl import network
from pdp.crawl.base import (
    MAX_PAGES,
    Check,
    Checks,
    Common,
    Exclusions,
    connect_failure,
    level_error,
    read_connection,
    reason,
    top_listing_check,
)
from pdp.objects.syncplan import Listing, Names, RemoteColumn, RemoteObject
from pdp.platforms import postgresql
from pdp.policy.model import Technology

Rows = list[tuple[Any, ...]]
BUILTIN_SCHEMAS = ("information_schema", "pg_catalog", "pg_toast*", "pg_temp_*")
KINDS = {
    "r": "TABLE",
    "p": "TABLE",
    "v": "VIEW",
    "m": "MATERIALIZED_VIEW",
    "f": "FOREIGN_TABLE",
}

DATABASES = """
SELECT datname FROM pg_database
WHERE NOT datistemplate AND datallowconn AND has_database_privilege(datname, 'CONNECT')
ORDER BY datname
"""
SCHEMAS = "SELECT nspname FROM pg_namespace ORDER BY nspname"
SCHEMA_ACCESS = "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = %s"
TABLES = """
SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY c.relname
"""
COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""


class PostgresCrawler:
    technology = Technology.POSTGRESQL

    def __init__(self, settings: postgresql.Settings, common: Common) -> None:
        self.settings, self.common = settings, common
        self.exclusions = Exclusions((), BUILTIN_SCHEMAS, common.exclude)
        self._connections: dict[str, psycopg.Connection[Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def _password(self) -> Secret | None:
        return self.settings.password

    # --- the seam ------------------------------------------------------------------------------

    def list(self, parent: Names) -> Listing:
        if problem := level_error(self.technology, parent):
            return Listing.failed(parent, problem)
        try:
            if not parent:
                children = self._databases()
            elif len(parent) == 1:
                children = self._schemas(parent[0])
            else:
                failed = self._denied(parent)
                if failed:
                    return Listing.failed(parent, failed)
                children = self._tables(parent[0], parent[1])
        except psycopg.Error as error:
            self._forget(parent[0] if parent else self._home())
            return Listing.failed(parent, reason(error))
        return Listing(parent, self.exclusions.keep(parent, children))

    def check(self) -> Checks:
        home = self._home()
        try:
            version = self._query(home, "SELECT current_setting('server_version')")[0][0]
        except psycopg.Error as error:
            self._forget(home)
            where = f"{self.settings.user}@{self.settings.host}:{self.settings.port}"
            return [Check("connect", False, f"{where}: {reason(error)}")]
        checks = [Check("connect", True, f"{self.settings.user} on PostgreSQL {version} ({home})")]
        empty = "no database this user may connect to"
        checks.append(top_listing_check("list databases", self.list(()), empty))
        return checks

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, {}
        for connection in connections.values():
            connection.close()

    # --- listings ------------------------------------------------------------------------------

    def _home(self) -> str:
        return self.settings.home

    def _databases(self) -> tuple[RemoteObject, ...]:
        if (database := self.settings.database) is not None:
            self._query(database, "SELECT 1")  # it exists and this user may connect
            return (RemoteObject(database),)
        rows = self._query(self.settings.maintenance_database, DATABASES)
        return tuple(RemoteObject(name) for (name,) in rows)

    def _schemas(self, database: str) -> tuple[RemoteObject, ...]:
        if self.settings.database is not None and database != self.settings.database:
            raise psycopg.OperationalError(f"database {database!r} is not this connection's")
        return tuple(RemoteObject(name) for (name,) in self._query(database, SCHEMAS))

    def _denied(self, parent: Names) -> str | None:
        rows = self._query(parent[0], SCHEMA_ACCESS, (parent[1],))
        if not rows:
            return None  # gone: an empty listing
        if not rows[0][0]:
            return f"permission denied for schema {parent[1]} (no USAGE for {self.settings.user})"
        return None

    def _tables(self, database: str, schema: str) -> tuple[RemoteObject, ...]:
        tables = self._query(database, TABLES, (schema,))
        columns: dict[str, list[RemoteColumn]] = {}
        for table, name, type_, nullable, position in self._query(database, COLUMNS, (schema,)):
            columns.setdefault(table, []).append(
                RemoteColumn(name, type_, bool(nullable), int(position))
            )
        return tuple(
            RemoteObject(name, KINDS[kind], tuple(columns.get(name, ()))) for name, kind in tables
        )

    # --- connections ---------------------------------------------------------------------------

    def _query(self, database: str, query: str, args: tuple[Any, ...] = ()) -> Rows:
        """All rows, read through a server-side cursor `pageSize` rows at a time (bounded)."""
        connection, lock = self._connection(database)
        rows: Rows = []
        # one statement at a time on a connection: listings may come from several threads
        with lock, connection.transaction(), connection.cursor(name="pdp_crawl") as cursor:
            cursor.execute(sql.SQL(query), args)
            for _ in range(MAX_PAGES):
                page = cursor.fetchmany(self.common.page_size)
                rows += page
                if len(page) < self.common.page_size:
                    return rows
        raise psycopg.OperationalError(f"more than {MAX_PAGES} pages of rows")

    def _connection(self, database: str) -> tuple[psycopg.Connection[Any], threading.Lock]:
        with self._lock:
            connection = self._connections.get(database)
            lock = self._locks.setdefault(database, threading.Lock())
            if connection is not None and not connection.closed:
                return connection, lock
            connection = self._connect(database)
            connection.read_only = True
            self._connections[database] = connection
            return connection, lock

    def _forget(self, database: str) -> None:
        with self._lock:
            connection = self._connections.pop(database, None)
        if connection is not None:
            connection.close()

    def _connect(self, database: str) -> psycopg.Connection[Any]:
        """A connection at an address the network policy allows when one guards this thread;
        a failure says what failed, never what the server answered."""
        seconds = self.common.timeout
        options: dict[str, Any] = {
            "connect_timeout": max(1, round(seconds)),
            "options": f"-c statement_timeout={int(seconds * 1000)}",
        }
        try:
            policy = network.active()
            if policy is not None:
                host, port = self.settings.host, self.settings.port
                options["hostaddr"] = policy.addresses(host, port)[0]
            return postgresql.connect(
                self.settings, application="pdp-crawler", database=database, **options
            )
        except (psycopg.Error, OSError) as error:
            raise psycopg.OperationalError(connect_failure(error)) from None


def open_postgres(
    endpoint: Mapping[str, Any],
    credentials: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> PostgresCrawler:
    settings, common = read_connection(
        Technology.POSTGRESQL, postgresql, endpoint, credentials, env
    )
    return PostgresCrawler(settings, common)
