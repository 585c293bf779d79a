"""Snowflake through snowflake-connector-python: `SHOW DATABASES`, `SHOW SCHEMAS IN DATABASE
<db>`, and per schema one query on `<db>.INFORMATION_SCHEMA.TABLES` and one on
`<db>.INFORMATION_SCHEMA.COLUMNS` (rows fetched a page at a time).

Endpoint: `{account, host?, port?, protocol?, warehouse?, role?}` plus the common keys.
Credentials: `{user, password}` or a key pair `{user, privateKey, privateKeyPassword?}` (an
RSA key as PEM text and its password, values the store decrypted), and in pdp.yaml the
references `passwordEnv | passwordFile`, `privateKeyFile`, `privateKeyPasswordEnv | File`. The
key goes to the connector as an object, never written to disk. With `role`, `check()` verifies
that the session runs as that role (it exists and is granted to the system user)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

import snowflake.connector
from snowflake.connector.errors import Error as SnowflakeError

from pdp.config import pem
from pdp.config.secret import Secret
from pdp.crawl.base import (
    COMMON_ENDPOINT_KEYS,
    MAX_PAGES,
    Check,
    Checks,
    Common,
    Config,
    Exclusions,
    connect_failure,
    level_error,
    reason,
    top_listing_check,
)
from pdp.objects.syncplan import Listing, Names, RemoteColumn, RemoteObject

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
    technology = "snowflake"

    def __init__(self, connect: dict[str, Any], secret: Secret | None, common: Common) -> None:
        """`connect`: the connector's arguments (a key pair's `private_key` object among them),
        without the password (`secret`)."""
        self.connect_args, self.common = connect, common
        self.role: str | None = connect.get("role")
        self.exclusions = Exclusions((), ("INFORMATION_SCHEMA",), common.exclude)
        self._secret = secret
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
        account = self.connect_args.get("account", "")
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
        args = {
            **self.connect_args,
            "login_timeout": seconds,
            "query_timeout": seconds,
            "request_timeout": seconds,
            # no async queries here: always log out on close
            "enable_server_session_keep_alive_auto_detection": False,
            "application": "pdp-crawler",
        }
        if self._secret is not None:
            args["password"] = self._secret.reveal()
        return snowflake.connector.connect(**args)

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
    config = Config("snowflake", env)
    keys = ("account", "host", "port", "protocol", "warehouse", "role")
    e = config.fields(endpoint, "endpoint", (*keys, *COMMON_ENDPOINT_KEYS))
    c = config.fields(
        credentials,
        "credentials",
        (
            "user",
            "password",
            "passwordEnv",
            "passwordFile",
            "privateKey",
            "privateKeyFile",
            "privateKeyPassword",
            "privateKeyPasswordEnv",
            "privateKeyPasswordFile",
        ),
    )
    args: dict[str, Any] = {"account": e.text("account", required=True)}
    for key in ("host", "warehouse", "role"):
        if e.has(key):
            args[key] = e.text(key, required=True)
    if e.has("port"):
        args["port"] = int(e.number("port", 443, low=1, high=65535, whole=True))
    if e.has("protocol"):
        args["protocol"] = e.choice("protocol", ("http", "https"), "https")
    common = config.common(e)
    args["user"] = c.text("user", required=True)
    secret: Secret | None = None
    given = [k for k in ("privateKey", "privateKeyFile") if c.has(k)]
    if len(given) > 1:
        c.error("privateKey", "give privateKey or privateKeyFile, not both")
    elif given:
        (name,) = given
        if c.has("password") or c.has("passwordEnv") or c.has("passwordFile"):
            c.error(name, "give a password or a key pair, not both")
        password = config.secret(c, "privateKeyPassword")
        text = c.text(name, required=True) if name == "privateKey" else c.file_bytes(name)
        if text:
            try:  # parsed here, so that a bad key is a configuration error naming its field
                args["private_key"] = pem.rsa_private_key(
                    text, password.reveal() if password else None
                )
            except ValueError as error:
                c.error(name, str(error))
        args["authenticator"] = "SNOWFLAKE_JWT"
    else:
        secret = config.secret(c, "password")
        if secret is None and not (c.has("passwordEnv") or c.has("passwordFile")):
            c.error("password", "give password (or passwordEnv/passwordFile), or privateKey")
    config.done()
    return SnowflakeCrawler(args, secret, common)
