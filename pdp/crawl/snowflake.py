"""Snowflake through snowflake-connector-python: `SHOW DATABASES`, `SHOW SCHEMAS IN DATABASE
<db>`, and per schema one query on `<db>.INFORMATION_SCHEMA.TABLES` and one on
`<db>.INFORMATION_SCHEMA.COLUMNS` (rows fetched a page at a time).

Endpoint and credentials: pdp.platforms.snowflake, plus the common keys. With `role`, `check()`
verifies that the session runs as that role (it exists and is granted to the system user)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

import snowflake.connector
from snowflake.connector.errors import Error as SnowflakeError

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
from pdp.platforms import snowflake as platform
from pdp.policy.model import Technology

Rows = list[tuple[Any, ...]]
FAILURES: tuple[type[BaseException], ...] = (SnowflakeError, OSError)
TABLE_TYPES = {
    "BASE TABLE": "TABLE",
    "TEMPORARY TABLE": "TABLE",
    "VIEW": "VIEW",
    "MATERIALIZED VIEW": "MATERIALIZED_VIEW",
    "EXTERNAL TABLE": "EXTERNAL_TABLE",
    "EVENT TABLE": "EVENT_TABLE",
}


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class SnowflakeCrawler:
    technology = Technology.SNOWFLAKE

    def __init__(self, settings: platform.Settings, common: Common) -> None:
        self.settings, self.common = settings, common
        self.role = settings.role
        self.exclusions = Exclusions((), ("INFORMATION_SCHEMA",), common.exclude)
        self._connection: Any = None
        self._lock = threading.Lock()
        self._statement = threading.Lock()

    # --- the seam ------------------------------------------------------------------------------

    def list(self, parent: Names) -> Listing:
        if problem := level_error(self.technology, parent):
            return Listing.failed(parent, problem)
        try:
            if not parent:
                children = self._names("SHOW DATABASES")
            elif len(parent) == 1:
                children = self._names(f"SHOW SCHEMAS IN DATABASE {identifier(parent[0])}")
            else:
                children = self._tables(parent[0], parent[1])
        except FAILURES as error:
            self._forget()
            return Listing.failed(parent, reason(error))
        return Listing(parent, self.exclusions.keep(parent, children))

    def check(self) -> Checks:
        account = self.settings.account
        try:
            rows, _ = self._query("SELECT CURRENT_USER(), CURRENT_ROLE()")
        except FAILURES as error:
            self._forget()
            return [Check("connect", False, f"{account}: {connect_failure(error)}")]
        user, role = rows[0][0], rows[0][1]
        checks = [Check("connect", True, f"{user} on {account}, role {role}")]
        if self.role is not None:
            if str(role or "").casefold() == self.role.casefold():
                checks.append(Check("role", True, f"session runs as {role}"))
            else:
                detail = f"session runs as {role}, not {self.role}: is it granted to {user}?"
                checks.append(Check("role", False, detail))
        checks.append(top_listing_check("list databases", self.list(())))
        return checks

    def close(self) -> None:
        self._forget()

    # --- listings ------------------------------------------------------------------------------

    def _names(self, sql: str) -> tuple[RemoteObject, ...]:
        rows, columns = self._query(sql)
        index = [c.casefold() for c in columns].index("name")
        return tuple(RemoteObject(str(row[index])) for row in rows)

    def _tables(self, database: str, schema: str) -> tuple[RemoteObject, ...]:
        where = f"{identifier(database)}.INFORMATION_SCHEMA"
        # INFORMATION_SCHEMA silently leaves out what the role may not see: an empty answer for
        # a schema it lost USAGE on would mark every table missing. SCHEMATA tells the two apart.
        visible, _ = self._query(
            f"SELECT SCHEMA_NAME FROM {where}.SCHEMATA WHERE SCHEMA_NAME = {literal(schema)}"
        )
        if not visible:
            raise SnowflakeError(
                msg=f"Schema '{database}.{schema}' does not exist or not authorized."
            )
        tables, _ = self._query(
            "SELECT TABLE_NAME, TABLE_TYPE, IS_DYNAMIC, IS_ICEBERG "
            f"FROM {where}.TABLES WHERE TABLE_SCHEMA = {literal(schema)} ORDER BY TABLE_NAME"
        )
        rows, _ = self._query(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, IS_NULLABLE, ORDINAL_POSITION "
            f"FROM {where}.COLUMNS WHERE TABLE_SCHEMA = {literal(schema)} "
            "ORDER BY TABLE_NAME, ORDINAL_POSITION"
        )
        columns: dict[str, list[RemoteColumn]] = {}
        for table, name, type_, nullable, position in rows:
            columns.setdefault(table, []).append(
                RemoteColumn(name, str(type_), str(nullable).upper() != "NO", int(position))
            )
        return tuple(
            RemoteObject(name, _table_type(kind, dynamic, iceberg), tuple(columns.get(name, ())))
            for name, kind, dynamic, iceberg in tables
        )

    # --- the connector -------------------------------------------------------------------------

    def _query(self, sql: str) -> tuple[Rows, Names]:
        """All rows, fetched `pageSize` at a time (bounded), and the column names."""
        # One statement at a time on the session (listings may come from several threads).
        with self._statement:
            return self._run(sql)

    def _run(self, sql: str) -> tuple[Rows, Names]:
        with self._lock:
            if self._connection is None:
                self._connection = self._connect()
            cursor = self._connection.cursor()
        try:
            cursor.execute(sql, timeout=max(1, round(self.common.timeout)))
            names = tuple(str(d[0]) for d in cursor.description or ())
            rows: Rows = []
            for _ in range(MAX_PAGES):
                page = cursor.fetchmany(self.common.page_size)
                rows += [tuple(row) for row in page]
                if len(page) < self.common.page_size:
                    return rows, names
            raise snowflake.connector.errors.OperationalError(
                msg=f"more than {MAX_PAGES} pages of rows"
            )
        finally:
            cursor.close()

    def _connect(self) -> Any:
        seconds = max(1, round(self.common.timeout))
        return platform.connect(
            self.settings,
            application="pdp-crawler",
            login_timeout=seconds,
            query_timeout=seconds,
            request_timeout=seconds,
            # no async queries here: always log out on close
            enable_server_session_keep_alive_auto_detection=False,
        )

    def _forget(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(*FAILURES):  # a broken session: nothing left to close
                connection.close()


def _table_type(kind: str | None, dynamic: str | None, iceberg: str | None) -> str:
    if str(dynamic).upper() == "YES":
        return "DYNAMIC_TABLE"
    if str(iceberg).upper() == "YES":
        return "ICEBERG_TABLE"
    text = str(kind or "BASE TABLE").upper()
    return TABLE_TYPES.get(text, text.replace(" ", "_"))


def open_snowflake(
    endpoint: Mapping[str, Any],
    credentials: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> SnowflakeCrawler:
    settings, common = read_connection(Technology.SNOWFLAKE, platform, endpoint, credentials, env)
    return SnowflakeCrawler(settings, common)
