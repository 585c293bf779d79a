"""The crawlers against real accounts. Runs only when credentials are in the environment
(the same variables as tests/grants/test_grants_live.py); reads metadata, changes nothing.

Snowflake: SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PASSWORD, PDP_LIVE_SNOWFLAKE_TABLE
(db.schema.table, an existing table); SNOWFLAKE_ROLE optional.
Databricks: DATABRICKS_HOST, DATABRICKS_TOKEN, PDP_LIVE_DATABRICKS_TABLE (catalog.schema.table)."""

from __future__ import annotations

import os

import pytest

from pdp.crawl import open_crawler


def _need(*names: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.skip(f"live test: set {', '.join(missing)}")
    return {n: os.environ[n] for n in names}


def _crawl_down_to(crawler, path: str) -> None:
    db, schema, table = path.split(".")
    try:
        assert all(c.ok for c in crawler.check()), crawler.check()
        for parent, child in (((), db), ((db,), schema)):
            listing = crawler.list(parent)
            assert listing.children is not None, listing.error
            assert child.casefold() in {c.name.casefold() for c in listing.children}
        listing = crawler.list((db, schema))
        assert listing.children is not None, listing.error
        found = {c.name.casefold(): c for c in listing.children}
        assert table.casefold() in found
        assert found[table.casefold()].remote_type
        assert found[table.casefold()].columns
    finally:
        crawler.close()


def test_snowflake_live():
    env = _need(
        "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "PDP_LIVE_SNOWFLAKE_TABLE"
    )
    endpoint = {"account": env["SNOWFLAKE_ACCOUNT"]}
    if os.environ.get("SNOWFLAKE_ROLE"):
        endpoint["role"] = os.environ["SNOWFLAKE_ROLE"]
    credentials = {"user": env["SNOWFLAKE_USER"], "passwordEnv": "SNOWFLAKE_PASSWORD"}
    crawler = open_crawler("snowflake", endpoint, credentials)
    _crawl_down_to(crawler, env["PDP_LIVE_SNOWFLAKE_TABLE"])


def test_databricks_live():
    env = _need("DATABRICKS_HOST", "DATABRICKS_TOKEN", "PDP_LIVE_DATABRICKS_TABLE")
    crawler = open_crawler(
        "databricks", {"host": env["DATABRICKS_HOST"]}, {"tokenEnv": "DATABRICKS_TOKEN"}
    )
    _crawl_down_to(crawler, env["PDP_LIVE_DATABRICKS_TABLE"])
