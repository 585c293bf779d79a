"""The Trino crawler against the run's real Trino (OPA -> sidecar -> PDP): the system user
`svc_crawler` matches the cluster's immuta.user.admin and sees registered tables no policy
grants; a normal user would not, so the crawler refuses to list as one.

(Here rather than in tests/crawl so that it shares the session's one Trino.)"""

from __future__ import annotations

import pytest

from devstack.processes import free_port
from pdp.crawl import open_crawler
from pdp.crawl.trino import TrinoCrawler
from pdp.objects.syncplan import Listing, RemoteColumn
from tests.e2e.conftest import ADMIN_USERS, E2E, PROPERTIES


def crawler(e2e: E2E, user: str, **endpoint: object) -> TrinoCrawler:
    where: dict[str, object] = {"host": "127.0.0.1", "port": e2e.trino.spec.port}
    where |= {"httpScheme": "http", "adminUsers": ADMIN_USERS, **endpoint}
    made = open_crawler("trino", where, {"user": user}, {})
    assert isinstance(made, TrinoCrawler)
    return made


def names(listing: Listing) -> list[str]:
    assert listing.children is not None, listing.error
    return [child.name for child in listing.children]


def test_catalogs_leave_out_system(e2e):
    found = names(crawler(e2e, "svc_crawler").list(()))
    assert {"memory", "tpch", "postgresql"} <= set(found)
    assert "system" not in found


def test_schemas_leave_out_information_schema(e2e):
    found = names(crawler(e2e, "svc_crawler").list(("memory",)))
    assert {"sales", "hr"} <= set(found)
    assert "information_schema" not in found


def test_the_system_user_sees_registered_tables_no_policy_grants(e2e):
    listing = crawler(e2e, "svc_crawler").list(("memory", "sales"))
    assert {"orders", "customers", "scratch"} <= set(names(listing))
    # alice sees only what a policy grants her among registered tables: not customers
    alice = {row[0] for row in e2e.query("alice", "SHOW TABLES FROM memory.sales")}
    assert "customers" not in alice


def test_tables_carry_type_and_columns_from_information_schema(e2e):
    e2e.query("admin", "CREATE SCHEMA IF NOT EXISTS memory.crawl")
    e2e.query("admin", "CREATE TABLE memory.crawl.t (id bigint NOT NULL, name varchar(20))")
    e2e.query("admin", "CREATE VIEW memory.crawl.v AS SELECT id FROM memory.crawl.t")
    try:
        listing = crawler(e2e, "svc_crawler").list(("memory", "crawl"))
        assert listing.children is not None, listing.error
        tables = {t.name: t for t in listing.children}
        assert {n: t.remote_type for n, t in tables.items()} == {"t": "TABLE", "v": "VIEW"}
        assert tables["t"].columns == (
            RemoteColumn("id", "bigint", False, 1),
            RemoteColumn("name", "varchar(20)", True, 2),
        )
        assert tables["v"].columns == (RemoteColumn("id", "bigint", True, 1),)
    finally:
        e2e.query("admin", "DROP VIEW IF EXISTS memory.crawl.v")
        e2e.query("admin", "DROP TABLE IF EXISTS memory.crawl.t")
        e2e.query("admin", "DROP SCHEMA IF EXISTS memory.crawl")


def test_rows_come_a_page_at_a_time(e2e):
    listing = crawler(e2e, "svc_crawler", pageSize=2).list(("tpch", "tiny"))
    tables = {t.name: t for t in listing.children or ()}
    assert len(tables) == 8, listing.error
    assert tables["nation"].columns is not None
    assert [c.name for c in tables["nation"].columns] == [
        "nationkey",
        "name",
        "regionkey",
        "comment",
    ]


def test_exclusions_apply_to_catalogs_and_schemas(e2e):
    c = crawler(e2e, "svc_crawler", exclude=["TPCH", "memory/hr"])
    assert "tpch" not in names(c.list(()))
    assert "hr" not in names(c.list(("memory",)))
    assert "sales" in names(c.list(("memory",)))


def test_an_unknown_catalog_is_a_failed_listing(e2e):
    listing = crawler(e2e, "svc_crawler").list(("no_such_catalog",))
    assert listing.children is None
    assert listing.error and "no_such_catalog" in listing.error


def test_check_passes_for_the_admin_system_user(e2e):
    checks = crawler(e2e, "svc_crawler").check()
    assert [(c.name, c.ok) for c in checks] == [
        ("connect", True),
        ("system user is admin", True),
        ("list catalogs", True),
    ]


def test_check_fails_naming_the_admin_check_for_a_normal_user(e2e):
    checks = crawler(e2e, "alice").check()
    failed = [c for c in checks if not c.ok]
    assert [c.name for c in failed] == ["system user is admin"]
    assert "'alice' does not match immuta.user.admin" in failed[0].detail


def test_a_normal_user_never_lists_a_filtered_view(e2e):
    listing = crawler(e2e, "alice").list(("memory", "sales"))
    assert listing.children is None
    assert listing.error and "filtered by policy" in listing.error


def test_the_admin_pattern_can_come_from_the_clusters_properties_file(e2e, tmp_path):
    properties = tmp_path / "immuta.properties"
    properties.write_text(PROPERTIES)
    endpoint: dict[str, object] = {"host": "127.0.0.1", "port": e2e.trino.spec.port}
    endpoint |= {"httpScheme": "http", "propertiesFile": str(properties)}
    good = open_crawler("trino", endpoint, {"user": "svc_sync"})
    bad = open_crawler("trino", endpoint, {"user": "bob"})
    assert all(c.ok for c in good.check())
    assert not next(c for c in bad.check() if c.name == "system user is admin").ok


def test_without_the_admin_pattern_the_check_fails(e2e):
    endpoint = {"host": "127.0.0.1", "port": e2e.trino.spec.port, "httpScheme": "http"}
    checks = open_crawler("trino", endpoint, {"user": "svc_crawler"}).check()
    assert [(c.name, c.ok) for c in checks] == [("connect", True), ("system user is admin", False)]


def test_an_unreachable_cluster_is_a_failed_listing_and_check(e2e):
    endpoint = {"host": "127.0.0.1", "port": free_port(), "httpScheme": "http", "timeout": 2}
    c = open_crawler("trino", {**endpoint, "adminUsers": ADMIN_USERS}, {"user": "svc_crawler"})
    assert c.list(()).children is None
    assert [(x.name, x.ok) for x in c.check()] == [
        ("connect", False),
        ("system user is admin", True),
    ]


@pytest.mark.parametrize(
    ("endpoint", "credentials", "message"),
    [
        ({"host": "h"}, {"user": "svc"}, "only over http"),
        (
            {"host": "h", "adminUsers": "(", "httpScheme": "http"},
            {"user": "svc"},
            "regular expression",
        ),
        ({"host": "h", "adminUsers": "a", "propertiesFile": "p"}, {"user": "svc"}, "not both"),
        ({"host": "h"}, {"username": "svc"}, "only over http"),
    ],
)
def test_a_bad_configuration_raises_naming_the_field(endpoint, credentials, message):
    from pdp.crawl import CrawlError

    with pytest.raises(CrawlError, match=message):
        open_crawler("trino", endpoint, credentials, {})
