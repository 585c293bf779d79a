"""Databricks Unity Catalog through the official SDK's API client: catalogs, the schemas of a
catalog, the tables of a schema with their columns (one paged listing each:
`GET /api/2.1/unity-catalog/{catalogs,schemas,tables}` with `max_results=0`, the server's page
size, following `next_page_token` until it is absent; a page may be empty and still carry a
token).

Endpoint: `{host}` (the workspace URL) plus the common keys. Credentials: a token
(`tokenEnv | tokenFile`) or an OAuth M2M service principal (`clientId`,
`clientSecretEnv | clientSecretFile`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config as SdkConfig
from databricks.sdk.errors import DatabricksError

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
    technology = "databricks"

    def __init__(
        self, host: str, secret: Secret, common: Common, client_id: str | None = None
    ) -> None:
        """`secret` is the token, or with `client_id` the OAuth client's secret. The SDK's Config
        is made on first use (it resolves the OAuth endpoints when it is made)."""
        self.host, self.common, self.client_id = host, common, client_id
        self._secret = secret
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
                config = SdkConfig(
                    host=self.host,
                    http_timeout_seconds=seconds,
                    retry_timeout_seconds=seconds,
                    **self._authentication(),
                )
                self._workspace = WorkspaceClient(config=config)
            return self._workspace

    def _authentication(self) -> dict[str, Any]:
        if self.client_id is None:
            return {"token": self._secret.reveal(), "auth_type": "pat"}
        return {
            "client_id": self.client_id,
            "client_secret": self._secret.reveal(),
            "auth_type": "oauth-m2m",
        }

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
    config = Config("databricks", env)
    e = config.fields(endpoint, "endpoint", ("host", *COMMON_ENDPOINT_KEYS))
    keys = (
        "token",
        "tokenEnv",
        "tokenFile",
        "clientId",
        "clientSecret",
        "clientSecretEnv",
        "clientSecretFile",
    )
    c = config.fields(credentials, "credentials", keys)
    host = e.text("host", required=True)
    common = config.common(e)
    token: Secret | None = None
    secret: Secret | None = None
    client_id = c.text("clientId")
    if client_id:
        secret = config.secret(c, "clientSecret")
        if secret is None and not (c.has("clientSecretEnv") or c.has("clientSecretFile")):
            c.error("clientSecret", "give clientSecret (or clientSecretEnv/File) with clientId")
        if c.has("token") or c.has("tokenEnv") or c.has("tokenFile"):
            c.error("clientId", "give a token or an OAuth client, not both")
    else:
        token = config.secret(c, "token")
        if token is None and not (c.has("tokenEnv") or c.has("tokenFile")):
            c.error("token", "give token (or tokenEnv/tokenFile), or clientId with clientSecret")
    config.done()
    if token is not None:
        return DatabricksCrawler(host, token, common)
    assert secret is not None
    return DatabricksCrawler(host, secret, common, client_id)
