"""The seam every crawler shares: the factory, exclusions, and what a listing may be."""

from __future__ import annotations

import pytest

from pdp.crawl import Crawler, Exclusions, open_crawler
from pdp.objects.syncplan import RemoteObject

ENDPOINTS = {
    "postgresql": ({"host": "127.0.0.1", "port": 1}, {"user": "u"}),
    "trino": ({"host": "127.0.0.1", "httpScheme": "http"}, {"user": "svc_crawler"}),
    "snowflake": ({"account": "a"}, {"user": "u", "passwordEnv": "P"}),
    "databricks": ({"host": "http://127.0.0.1:1"}, {"tokenEnv": "P"}),
}


@pytest.mark.parametrize("technology", sorted(ENDPOINTS))
def test_the_factory_builds_a_crawler_per_technology_without_sending_anything(technology):
    endpoint, credentials = ENDPOINTS[technology]
    crawler = open_crawler(technology, endpoint, credentials, {"P": "secret"})
    assert isinstance(crawler, Crawler)
    assert crawler.technology == technology
    crawler.close()


@pytest.mark.parametrize("technology", sorted(ENDPOINTS))
def test_there_is_nothing_to_list_below_a_table(technology):
    endpoint, credentials = ENDPOINTS[technology]
    crawler = open_crawler(technology, endpoint, credentials, {"P": "secret"})
    listing = crawler.list(("db", "schema", "table"))
    assert listing.children is None
    assert listing.error and "below a table" in listing.error


def test_builtin_names_are_skipped_at_their_level_only():
    rules = Exclusions(("system",), ("information_schema", "pg_toast*"))
    assert rules.skip(("system",))
    assert not rules.skip(("db", "system"))
    assert rules.skip(("db", "INFORMATION_SCHEMA"))
    assert rules.skip(("db", "pg_toast_temp_1"))
    assert not rules.skip(("information_schema",))


def test_a_pattern_matches_a_database_or_a_schema_case_insensitively():
    rules = Exclusions(patterns=("scratch_*",))
    assert rules.skip(("SCRATCH_1",))
    assert rules.skip(("db", "scratch_2"))
    assert not rules.skip(("db", "scratch"))


def test_a_slash_pattern_matches_one_databases_schema():
    rules = Exclusions(patterns=("prod/tmp*",))
    assert rules.skip(("prod", "tmp1"))
    assert not rules.skip(("dev", "tmp1"))
    assert not rules.skip(("prod",))


def test_tables_are_never_excluded_by_name():
    rules = Exclusions(("t",), ("t",), ("t",))
    children = (RemoteObject("t"), RemoteObject("u"))
    assert rules.keep(("db", "schema"), children) == children
    assert rules.keep(("db",), children) == (RemoteObject("u"),)
