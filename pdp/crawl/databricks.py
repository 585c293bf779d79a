"""Databricks Unity Catalog through the official SDK's API client: catalogs, the schemas of a
catalog, the tables of a schema with their columns (one paged listing each:
`GET /api/2.1/unity-catalog/{catalogs,schemas,tables}` with `max_results=0`, the server's page
size, following `next_page_token` until it is absent; a page may be empty and still carry a
token).

Endpoint and credentials: pdp.platforms.databricks, plus the common keys."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError

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
from pdp.platforms import databricks as platform
from pdp.policy.model import Technology

API = "/api/2.1/unity-catalog"
Items = list[dict[str, Any]]
FAILURES: tuple[type[BaseException], ...] = (
    DatabricksError,
    requests.RequestException,
    OSError,
    ValueError,  # the SDK's own: a bad answer, an authentication it cannot complete
)
TABLE_TYPES = {
    "MANAGED": "TABLE",
    "EXTERNAL": "EXTERNAL_TABLE",
    "EXTERNAL_SHALLOW_CLONE": "EXTERNAL_TABLE",
    "MANAGED_SHALLOW_CLONE": "TABLE",
    "VIEW": "VIEW",
    "METRIC_VIEW": "VIEW",
    "MATERIALIZED_VIEW": "MATERIALIZED_VIEW",
    "STREAMING_TABLE": "STREAMING_TABLE",
    "FOREIGN": "FOREIGN_TABLE",
}


class DatabricksCrawler:
    technology = Technology.DATABRICKS

    def __init__(self, settings: platform.Settings, common: Common) -> None:
        """The SDK's client is made on first use (it resolves the OAuth endpoints when made)."""
        self.settings, self.host, self.common = settings, settings.host, common
        self.exclusions = Exclusions(
            ("system", "__databricks_internal"), ("information_schema",), common.exclude
        )
        self._workspace: WorkspaceClient | None = None
        self._lock = threading.Lock()

    # --- the seam ------------------------------------------------------------------------------

    def list(self, parent: Names) -> Listing:
        if problem := level_error(self.technology, parent):
            return Listing.failed(parent, problem)
        try:
            if not parent:
                items = self._pages("catalogs", "catalogs", {})
                children = tuple(RemoteObject(item["name"]) for item in items)
            elif len(parent) == 1:
                items = self._pages("schemas", "schemas", {"catalog_name": parent[0]})
                children = tuple(RemoteObject(item["name"]) for item in items)
            else:
                query = {"catalog_name": parent[0], "schema_name": parent[1]}
                children = tuple(_table(item) for item in self._pages("tables", "tables", query))
        except FAILURES as error:
            return Listing.failed(parent, reason(error))
        return Listing(parent, self.exclusions.keep(parent, children))

    def check(self) -> Checks:
        try:
            me = self._client().current_user.me()
        except FAILURES as error:
            return [Check("authenticate", False, f"{self.host}: {connect_failure(error)}")]
        checks = [Check("authenticate", True, f"{me.user_name} at {self.host}")]
        checks.append(top_listing_check("list catalogs", self.list(())))
        return checks

    def close(self) -> None:
        with self._lock:
            self._workspace = None

    # --- the API -------------------------------------------------------------------------------

    def _client(self) -> WorkspaceClient:
        with self._lock:
            if self._workspace is None:
                seconds = max(1, round(self.common.timeout))
                self._workspace = platform.connect(
                    self.settings,
                    application="pdp-crawler",
                    http_timeout_seconds=seconds,
                    retry_timeout_seconds=seconds,
                )
            return self._workspace

    def _pages(self, what: str, field: str, query: dict[str, Any]) -> Items:
        api = self._client().api_client
        items: Items = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            asked: dict[str, Any] = {**query, "max_results": 0}  # 0: the server's page size
            if token:
                asked["page_token"] = token
            page = api.do(
                "GET", f"{API}/{what}", query=asked, headers={"Accept": "application/json"}
            )
            if not isinstance(page, dict):
                raise ValueError(f"{what}: expected a JSON object, got {type(page).__name__}")
            items += page.get(field) or []
            token = page.get("next_page_token")
            if not token:  # an empty page may still carry a token; only its absence ends it
                return items
        raise ValueError(f"{what}: more than {MAX_PAGES} pages")


def _table(item: Mapping[str, Any]) -> RemoteObject:
    kind = str(item.get("table_type") or "MANAGED")
    columns = tuple(
        RemoteColumn(
            column["name"],
            str(column.get("type_text") or column.get("type_name") or ""),
            bool(column.get("nullable", True)),
            int(column.get("position", index)) + 1,  # Unity Catalog counts from 0
        )
        for index, column in enumerate(item.get("columns") or ())
    )
    return RemoteObject(item["name"], TABLE_TYPES.get(kind, kind), columns)


def open_databricks(
    endpoint: Mapping[str, Any],
    credentials: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> DatabricksCrawler:
    settings, common = read_connection(Technology.DATABRICKS, platform, endpoint, credentials, env)
    return DatabricksCrawler(settings, common)
