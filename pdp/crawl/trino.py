"""Trino through the `trino` client: catalogs from `system.metadata.catalogs`, per catalog its
`information_schema.schemata`, per schema its `information_schema.tables` and
`information_schema.columns` (one query each, fetched a page at a time).

The crawl must see every catalog, schema and table, never a policy-filtered view of them: the
system user must match the cluster's `immuta.user.admin`. The endpoint names that pattern
(`adminUsers`) or the cluster's access-control properties file (`propertiesFile`); `check()`
fails while the user does not match, and so does every listing (a filtered listing would mark
the hidden tables missing).

Endpoint and credentials: pdp.platforms.trino, plus `adminUsers? | propertiesFile?` and the
common keys."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import trino.auth
import trino.exceptions

from pdp.auth.trino import TrinoLogin
from pdp.config.fields import Fields
from pdp.config.properties import parse_properties
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
from pdp.platforms import trino as platform
from pdp.policy.model import Technology

Rows = list[tuple[Any, ...]]
FAILURES: tuple[type[BaseException], ...] = (
    trino.exceptions.Error,
    trino.exceptions.HttpError,
    requests.RequestException,
    OSError,
)
TABLE_TYPES = {"BASE TABLE": "TABLE", "VIEW": "VIEW", "MATERIALIZED VIEW": "MATERIALIZED_VIEW"}


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class TrinoCrawler:
    technology = Technology.TRINO

    def __init__(
        self,
        settings: platform.Settings,
        *,
        admin: re.Pattern[str] | None = None,
        admin_source: str = "",
        common: Common,
    ) -> None:
        self.settings, self.admin, self.admin_source = settings, admin, admin_source
        self.common = common
        self.exclusions = Exclusions(("system",), ("information_schema",), common.exclude)
        self._auth: trino.auth.Authentication | None = None
        self._lock = threading.Lock()

    @property
    def user(self) -> str:
        return self.settings.user

    @property
    def login(self) -> TrinoLogin | None:
        return self.settings.login

    @property
    def http_scheme(self) -> str:
        return self.settings.http_scheme

    @property
    def port(self) -> int:
        return self.settings.port

    # --- the seam ------------------------------------------------------------------------------

    def list(self, parent: Names) -> Listing:
        if problem := level_error(self.technology, parent):
            return Listing.failed(parent, problem)
        if self.admin is not None and not self.admin.fullmatch(self.user):
            return Listing.failed(parent, self._not_admin())
        try:
            if not parent:
                rows = self._query("SELECT catalog_name FROM system.metadata.catalogs ORDER BY 1")
                children = tuple(RemoteObject(name) for (name,) in rows)
            elif len(parent) == 1:
                rows = self._query(
                    f"SELECT schema_name FROM {identifier(parent[0])}.information_schema.schemata "
                    "ORDER BY 1"
                )
                children = tuple(RemoteObject(name) for (name,) in rows)
            else:
                children = self._tables(parent[0], parent[1])
        except FAILURES as error:
            return Listing.failed(parent, reason(error))
        return Listing(parent, self.exclusions.keep(parent, children))

    def check(self) -> Checks:
        checks: Checks = []
        try:
            self._query("SELECT 1")
            checks.append(Check("connect", True, f"{self.user} at {self._url()}"))
        except FAILURES as error:
            checks.append(Check("connect", False, f"{self._url()}: {connect_failure(error)}"))
        if self.admin is None:
            detail = (
                "cannot tell whether the system user sees unfiltered metadata: set "
                "endpoint.adminUsers (the cluster's immuta.user.admin) or endpoint.propertiesFile"
            )
            checks.append(Check("system user is admin", False, detail))
        elif self.admin.fullmatch(self.user):
            detail = f"{self.user} matches {self.admin.pattern!r}{self.admin_source}"
            checks.append(Check("system user is admin", True, detail))
        else:
            checks.append(Check("system user is admin", False, self._not_admin()))
        if all(c.ok for c in checks):
            checks.append(top_listing_check("list catalogs", self.list(())))
        return checks

    def close(self) -> None:
        with self._lock:
            auth, self._auth = self._auth, None
        close = getattr(auth, "close", None)
        if close is not None:
            close()

    # --- listings ------------------------------------------------------------------------------

    def _tables(self, catalog: str, schema: str) -> tuple[RemoteObject, ...]:
        where = f"{identifier(catalog)}.information_schema"
        tables = self._query(
            f"SELECT table_name, table_type FROM {where}.tables "
            f"WHERE table_schema = {literal(schema)} ORDER BY 1"
        )
        columns: dict[str, list[RemoteColumn]] = {}
        rows = self._query(
            "SELECT table_name, column_name, data_type, is_nullable, ordinal_position "
            f"FROM {where}.columns WHERE table_schema = {literal(schema)} "
            "ORDER BY table_name, ordinal_position"
        )
        for table, name, type_, nullable, position in rows:
            columns.setdefault(table, []).append(
                RemoteColumn(name, type_, str(nullable).upper() != "NO", int(position))
            )
        return tuple(
            RemoteObject(name, _table_type(kind), tuple(columns.get(name, ())))
            for name, kind in tables
        )

    def _not_admin(self) -> str:
        assert self.admin is not None
        return (
            f"system user {self.user!r} does not match immuta.user.admin "
            f"{self.admin.pattern!r}{self.admin_source}: its listings would be filtered by policy"
        )

    # --- the client ----------------------------------------------------------------------------

    def _url(self) -> str:
        return f"{self.http_scheme}://{self.settings.host}:{self.port}"

    def _authentication(self) -> Any:
        with self._lock:
            if self._auth is None:
                self._auth = platform.authentication(self.settings)
            return self._auth

    def _query(self, sql: str) -> Rows:
        """All rows, fetched `pageSize` at a time (bounded), on a connection of its own (a
        Trino connection is a cheap HTTP session; this keeps concurrent listings apart)."""
        seconds = max(1, round(self.common.timeout))
        connection = platform.connect(
            self.settings,
            application="pdp-crawler",
            auth=self._authentication(),
            request_timeout=self.common.timeout,
            max_attempts=2,
            session_properties={"query_max_run_time": f"{seconds}s"},
        )
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            rows: Rows = []
            for _ in range(MAX_PAGES):
                page = cursor.fetchmany(self.common.page_size)
                rows += [tuple(row) for row in page]
                if len(page) < self.common.page_size:
                    return rows
            cursor.cancel()
            raise trino.exceptions.OperationalError(f"more than {MAX_PAGES} pages of rows")
        finally:
            connection.close()


def _table_type(kind: str | None) -> str:
    text = (kind or "TABLE").upper()
    return TABLE_TYPES.get(text, text.replace(" ", "_"))


def open_trino(
    endpoint: Mapping[str, Any],
    credentials: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> TrinoCrawler:
    config = Config(Technology.TRINO, env)
    keys = (*platform.ENDPOINT_KEYS, "adminUsers", "propertiesFile", *COMMON_ENDPOINT_KEYS)
    e = config.fields(endpoint, "endpoint", keys)
    settings = platform.from_connection(e, credentials, config.env)
    common = config.common(e)
    admin, admin_source = _admin(e)
    config.done()
    return TrinoCrawler(settings, admin=admin, admin_source=admin_source, common=common)


def _admin(e: Fields) -> tuple[re.Pattern[str] | None, str]:
    """The cluster's `immuta.user.admin`, from `adminUsers` or the `propertiesFile`."""
    if e.has("adminUsers") and e.has("propertiesFile"):
        e.error("adminUsers", "give adminUsers or propertiesFile, not both")
    elif e.has("adminUsers"):
        try:
            return re.compile(e.text("adminUsers", required=True)), ""
        except re.error as error:
            e.error("adminUsers", f"not a regular expression: {error}")
    elif e.has("propertiesFile"):
        path = e.file_path("propertiesFile", required=True)
        if path is not None:
            return _admin_from(path, e.error)
    return None, ""


def _admin_from(path: Path, error: Any) -> tuple[re.Pattern[str] | None, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as failure:
        error("propertiesFile", f"cannot read {path}: {failure.strerror}")
        return None, ""
    settings, found = parse_properties(text, str(path))
    if found.errors:
        error("propertiesFile", "; ".join(str(p) for p in found.errors))
        return None, ""
    return settings.admin, f" (in {path})"
