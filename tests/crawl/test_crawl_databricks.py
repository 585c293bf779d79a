"""The Unity Catalog crawler, through the official SDK, against the fake workspace
(tests/grants/fakes/uc_server.py): paged listings checked against the Unity Catalog contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pdp.crawl import CrawlError, open_crawler
from pdp.crawl.databricks import DatabricksCrawler
from pdp.objects.syncplan import Listing, RemoteColumn
from tests.grants.fakes.uc_server import Fault, Workspace, serve

TYPE_NAMES = {"bigint": "LONG", "int": "INT", "string": "STRING", "decimal": "DECIMAL"}


def column(name: str, type_text: str, position: int, nullable: bool = True) -> dict[str, Any]:
    type_name = TYPE_NAMES[type_text.split("(")[0]]
    return {
        "name": name,
        "type_text": type_text,
        "type_name": type_name,
        "position": position,
        "nullable": nullable,
    }


def table(name: str, table_type: str = "MANAGED", *columns: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "table_type": table_type, "columns": list(columns)}


@pytest.fixture
def workspace() -> Workspace:
    w = Workspace()
    w.tree = {
        "main": {
            "sales": {
                "orders": table(
                    "orders",
                    "MANAGED",
                    column("id", "bigint", 0, False),
                    column("total", "decimal(10,2)", 1),
                ),
                "raw": table("raw", "EXTERNAL", column("line", "string", 0)),
                "big": table("big", "VIEW", column("id", "bigint", 0)),
                "daily": table("daily", "MATERIALIZED_VIEW"),
                "feed": table("feed", "STREAMING_TABLE"),
            },
            "hr": {},
            "information_schema": {"tables": table("tables", "VIEW")},
        },
        "system": {"access": {}},
        "dev": {},
    }
    return w


@pytest.fixture
def url(workspace: Workspace) -> Iterator[str]:
    with serve(workspace) as base:
        yield base


def crawler(url: str, **endpoint: object) -> DatabricksCrawler:
    made = open_crawler(
        "databricks",
        {"host": url, "timeout": 5, **endpoint},
        {"tokenEnv": "DBX_TOKEN"},
        {"DBX_TOKEN": "dapi-test-token"},
    )
    assert isinstance(made, DatabricksCrawler)
    return made


def names(listing: Listing) -> list[str]:
    assert listing.children is not None, listing.error
    return [child.name for child in listing.children]


def test_catalogs_leave_out_system(url, workspace):
    assert names(crawler(url).list(())) == ["dev", "main"]
    assert workspace.violations == []


def test_schemas_leave_out_information_schema(url, workspace):
    assert names(crawler(url).list(("main",))) == ["hr", "sales"]
    assert workspace.violations == []


def test_tables_carry_their_type_and_columns_counted_from_one(url, workspace):
    listing = crawler(url).list(("main", "sales"))
    assert listing.children is not None, listing.error
    tables = {t.name: t for t in listing.children}
    assert {n: t.remote_type for n, t in tables.items()} == {
        "big": "VIEW",
        "daily": "MATERIALIZED_VIEW",
        "feed": "STREAMING_TABLE",
        "orders": "TABLE",
        "raw": "EXTERNAL_TABLE",
    }
    assert tables["orders"].columns == (
        RemoteColumn("id", "bigint", False, 1),
        RemoteColumn("total", "decimal(10,2)", True, 2),
    )
    assert workspace.violations == []


def test_one_schema_is_one_paged_listing_through_every_page(url, workspace):
    workspace.tree["main"]["wide"] = {f"t{i:02}": table(f"t{i:02}") for i in range(7)}
    workspace.log.clear()
    listing = crawler(url).list(("main", "wide"))
    assert len(names(listing)) == 7
    pages = [e for e in workspace.log if e.path.endswith("/tables")]
    # an empty first page with a token, then 4 pages of 2: never one call per table
    assert [e.query.get("page_token", [""])[0] for e in pages] == ["", "o0", "o2", "o4", "o6"]
    assert all(e.query["max_results"] == ["0"] for e in pages)


def test_a_second_crawl_sees_what_changed(url, workspace):
    c = crawler(url)
    c.list(("main", "sales"))
    sales = workspace.tree["main"]["sales"]
    del sales["big"]
    sales["orders"]["columns"].append(column("region", "string", 2))
    sales["new"] = table("new", "MANAGED", column("x", "int", 0))
    listing = c.list(("main", "sales"))
    tables = {t.name: t for t in listing.children or ()}
    assert sorted(tables) == ["daily", "feed", "new", "orders", "raw"]
    assert tables["orders"].columns is not None
    assert [col.name for col in tables["orders"].columns] == ["id", "total", "region"]


def test_a_schema_the_user_may_not_use_is_a_failed_listing(url, workspace):
    workspace.denied_schemas.add(("main", "sales"))
    c = crawler(url)
    failed = c.list(("main", "sales"))
    assert failed.children is None
    assert failed.error and "USE SCHEMA" in failed.error
    assert c.list(("main", "hr")).children == ()


def test_an_unknown_catalog_is_a_failed_listing(url):
    listing = crawler(url).list(("gone",))
    assert listing.children is None
    assert listing.error and "does not exist" in listing.error


def test_a_server_error_is_a_failed_listing_not_an_exception(url, workspace):
    workspace.faults.append(Fault("GET", 500, "INTERNAL_ERROR", times=100, match="/catalogs"))
    listing = crawler(url, timeout=1).list(())
    assert listing.children is None
    assert listing.error


def test_exclusions_skip_catalogs_and_schemas(url):
    c = crawler(url, exclude=["DEV", "main/h*"])
    assert names(c.list(())) == ["main"]
    assert names(c.list(("main",))) == ["sales"]


def test_check_passes_with_a_good_token(url):
    checks = crawler(url).check()
    assert [(c.name, c.ok) for c in checks] == [("authenticate", True), ("list catalogs", True)]
    assert "sync@example.com" in checks[0].detail


def test_check_names_a_rejected_token(url):
    c = open_crawler("databricks", {"host": url, "timeout": 5}, {"tokenEnv": "T"}, {"T": "wrong"})
    checks = c.check()
    assert [(x.name, x.ok) for x in checks] == [("authenticate", False)]
    # what failed, in the PDP's words: not the server's answer
    assert checks[0].detail == f"{url}: authentication failed"


def test_an_oauth_service_principal_works_too(url, workspace):
    c = open_crawler(
        "databricks",
        {"host": url, "timeout": 5},
        {"clientId": "sync-client", "clientSecretEnv": "S"},
        {"S": "sync-secret"},
    )
    assert names(c.list(())) == ["dev", "main"]
    assert workspace.token_requests >= 1


def test_the_token_never_shows(url):
    c = crawler(url)
    assert "dapi-test-token" not in repr(vars(c))


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ({}, "tokenEnv"),
        ({"tokenEnv": "MISSING"}, "MISSING"),
        ({"clientId": "c"}, "clientSecretEnv"),
        ({"clientId": "c", "clientSecretEnv": "S", "tokenEnv": "T"}, "not both"),
        ({"token": "a value", "tokenEnv": "T"}, "not both"),
    ],
)
def test_bad_credentials_raise_naming_the_field(credentials, message):
    with pytest.raises(CrawlError, match=message):
        open_crawler("databricks", {"host": "https://x"}, credentials, {"S": "s", "T": "t"})
