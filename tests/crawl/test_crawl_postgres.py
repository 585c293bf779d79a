"""The PostgreSQL crawler against the run's real PostgreSQL: each test builds its own database,
crawls it, changes it, crawls again."""

from __future__ import annotations

import psycopg
import pytest

from devstack.postgres import Postgres
from devstack.processes import free_port
from pdp.crawl import CrawlError, open_crawler
from pdp.crawl.postgres import PostgresCrawler
from pdp.objects.syncplan import Listing, RemoteColumn


def crawler(pg: Postgres, database: str | None = None, **endpoint: object) -> PostgresCrawler:
    where: dict[str, object] = {"host": pg.host, "port": pg.port, **endpoint}
    if database:
        where["database"] = database
    env = {"PG_PASSWORD": pg.password} if pg.password else {}
    credentials: dict[str, object] = {"user": pg.user}
    if pg.password:
        credentials["passwordEnv"] = "PG_PASSWORD"
    made = open_crawler("postgresql", where, credentials, env)
    assert isinstance(made, PostgresCrawler)
    return made


def names(listing: Listing) -> list[str]:
    assert listing.children is not None, listing.error
    return [child.name for child in listing.children]


def test_without_a_database_it_lists_every_database_the_user_may_connect_to(pg, db):
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{db}_closed" ALLOW_CONNECTIONS false')
    try:
        found = names(crawler(pg).list(()))
    finally:
        with pg.connect() as admin:
            admin.execute(f'DROP DATABASE "{db}_closed"')
    assert db in found and "postgres" in found
    assert f"{db}_closed" not in found
    assert "template0" not in found and "template1" not in found


def test_with_a_database_it_lists_that_database_alone(pg, db):
    assert names(crawler(pg, db).list(())) == [db]


def test_schemas_leave_out_the_catalogs_and_toast(pg, db):
    found = names(crawler(pg, db).list((db,)))
    assert "sales" in found and "public" in found
    assert not [
        n for n in found if n in ("information_schema", "pg_catalog") or n.startswith("pg_")
    ]


def test_exclude_patterns_skip_databases_and_schemas(pg, db):
    with pg.connect(db) as conn:
        conn.execute("CREATE SCHEMA scratch_1")
        conn.execute("CREATE SCHEMA keep")
    c = crawler(pg, exclude=["SCRATCH_*", f"{db}/keep", "postgres"])
    assert "postgres" not in names(c.list(()))
    assert {"sales", "public"} <= set(names(c.list((db,))))
    assert not {"scratch_1", "keep"} & set(names(c.list((db,))))


def test_tables_carry_their_kind_and_columns(pg, db):
    listing = crawler(pg, db).list((db, "sales"))
    assert listing.children is not None
    tables = {t.name: t for t in listing.children}
    assert {n: t.remote_type for n, t in tables.items()} == {
        "big": "VIEW",
        "events": "TABLE",
        "orders": "TABLE",
        "totals": "MATERIALIZED_VIEW",
    }
    assert tables["orders"].columns == (
        RemoteColumn("id", "integer", False, 1),
        RemoteColumn("total", "numeric(10,2)", True, 2),
        RemoteColumn("note", "text", True, 3),
    )


def test_a_foreign_table_is_a_foreign_table(pg, db):
    with pg.connect(db) as conn:
        conn.execute("CREATE FOREIGN DATA WRAPPER crawl_fdw")
        conn.execute("CREATE SERVER crawl_server FOREIGN DATA WRAPPER crawl_fdw")
        conn.execute("CREATE FOREIGN TABLE sales.remote (x int) SERVER crawl_server")
    listing = crawler(pg, db).list((db, "sales"))
    assert listing.children is not None
    remote = next(t for t in listing.children if t.name == "remote")
    assert remote.remote_type == "FOREIGN_TABLE"
    assert remote.columns == (RemoteColumn("x", "integer", True, 1),)


def test_a_second_crawl_sees_drops_adds_and_altered_columns(pg, db):
    c = crawler(pg, db)
    c.list((db, "sales"))
    with pg.connect(db) as conn:
        conn.execute("DROP VIEW sales.big")
        conn.execute("DROP MATERIALIZED VIEW sales.totals")
        conn.execute("ALTER TABLE sales.orders DROP COLUMN note")
        conn.execute("ALTER TABLE sales.orders ALTER COLUMN total TYPE bigint")
        conn.execute("ALTER TABLE sales.orders ADD COLUMN region varchar(8)")
        conn.execute("CREATE TABLE sales.returns (id int)")
    listing = c.list((db, "sales"))
    assert listing.children is not None
    tables = {t.name: t for t in listing.children}
    assert sorted(tables) == ["events", "orders", "returns"]
    # positions count the live columns: no gap where `note` was dropped
    assert tables["orders"].columns == (
        RemoteColumn("id", "integer", False, 1),
        RemoteColumn("total", "bigint", True, 2),
        RemoteColumn("region", "character varying(8)", True, 3),
    )


def test_a_dropped_and_recreated_database_is_listed_again(pg, db):
    c = crawler(pg)
    assert db in names(c.list(()))
    assert "sales" in names(c.list((db,)))
    with pg.connect() as admin:
        admin.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
    assert db not in names(c.list(()))
    assert c.list((db,)).children is None  # its connection is gone: unknown, not empty
    with pg.connect() as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    assert db in names(c.list(()))
    assert "sales" not in names(c.list((db,)))


def test_columns_come_in_pages_of_the_configured_size(pg, db):
    with pg.connect(db) as conn:
        conn.execute("CREATE TABLE sales.wide (" + ", ".join(f"c{i} int" for i in range(25)) + ")")
    listing = crawler(pg, db, pageSize=7).list((db, "sales"))
    assert listing.children is not None
    wide = next(t for t in listing.children if t.name == "wide")
    assert wide.columns is not None
    assert [c.position for c in wide.columns] == list(range(1, 26))


def test_a_schema_without_usage_is_a_failed_listing(pg, db):
    role = f"{db}_reader"
    with pg.connect(db) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute("REVOKE ALL ON SCHEMA sales FROM PUBLIC")
    try:
        c = open_crawler(
            "postgresql", {"host": pg.host, "port": pg.port, "database": db}, {"user": role}, {}
        )
        public = c.list((db, "public"))
        sales = c.list((db, "sales"))
        c.close()
    finally:
        with pg.connect() as admin:
            admin.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            admin.execute(f'DROP ROLE "{role}"')
    assert public.children == ()
    assert sales.children is None
    assert sales.error is not None and "permission denied for schema sales" in sales.error


def test_a_table_that_is_not_there_any_more_lists_nothing(pg, db):
    assert crawler(pg, db).list((db, "nothing_here")).children == ()


def test_an_unreachable_server_is_a_failed_listing_not_an_exception(pg):
    c = open_crawler(
        "postgresql", {"host": "127.0.0.1", "port": free_port(), "timeout": 2}, {"user": "x"}, {}
    )
    listing = c.list(())
    assert listing.children is None
    assert listing.error == "connection refused"  # what failed, never the answer


def test_check_passes_with_good_credentials(pg, db):
    checks = crawler(pg, db).check()
    assert [(c.name, c.ok) for c in checks] == [("connect", True), ("list databases", True)]
    assert db in checks[1].detail


def test_check_names_the_failed_login_of_an_unknown_role(pg):
    # The throwaway cluster trusts every local login, so a wrong password cannot fail there;
    # an unknown role fails the same check.
    checks = open_crawler(
        "postgresql", {"host": pg.host, "port": pg.port}, {"user": "nobody_here"}, {}
    ).check()
    assert [(c.name, c.ok) for c in checks] == [("connect", False)]
    assert checks[0].detail == f"nobody_here@{pg.host}:{pg.port}: authentication failed"


def test_check_names_an_unreachable_server(pg):
    checks = open_crawler(
        "postgresql", {"host": "127.0.0.1", "port": free_port(), "timeout": 2}, {"user": "x"}, {}
    ).check()
    assert [(c.name, c.ok) for c in checks] == [("connect", False)]


def test_the_password_comes_from_the_named_file_and_never_shows(pg, tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret-value\n")
    c = open_crawler(
        "postgresql", {"host": "h"}, {"user": "u", "passwordFile": str(secret_file)}, {}
    )
    assert isinstance(c, PostgresCrawler)
    assert c._password is not None and c._password.reveal() == "s3cret-value"
    assert "s3cret" not in repr(vars(c))


@pytest.mark.parametrize(
    ("endpoint", "credentials", "message"),
    [
        ({}, {"user": "u"}, "host"),
        ({"host": "h", "port": "x"}, {"user": "u"}, "port"),
        ({"host": "h", "bogus": 1}, {"user": "u"}, "bogus"),
        ({"host": "h"}, {"user": "u", "password": "v", "passwordEnv": "P"}, "not both"),
        ({"host": "h"}, {"user": "u", "passwordEnv": "NOT_SET"}, "NOT_SET"),
        ({"host": "h"}, {}, "user"),
    ],
)
def test_a_bad_configuration_raises_naming_the_field(endpoint, credentials, message):
    with pytest.raises(CrawlError, match=message):
        open_crawler("postgresql", endpoint, credentials, {})


def test_an_unknown_technology_is_refused():
    with pytest.raises(CrawlError, match="technology"):
        open_crawler("oracle", {}, {})


def test_psycopg_errors_never_escape(pg, db, monkeypatch):
    c = crawler(pg, db)

    def broken(*args, **kwargs):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(c, "_query", broken)
    assert c.list((db, "sales")) == Listing.failed(
        (db, "sales"), "server closed the connection unexpectedly"
    )


def test_listings_from_several_threads_share_the_connection_safely(pg, db):
    from concurrent.futures import ThreadPoolExecutor

    with pg.connect(db) as conn:
        for i in range(6):
            conn.execute(f"CREATE SCHEMA s{i}")
            conn.execute(f"CREATE TABLE s{i}.t{i} (x int)")
    c = crawler(pg, db)
    with ThreadPoolExecutor(4) as pool:
        listings = list(pool.map(c.list, [(db, f"s{i}") for i in range(6)] * 3))
    assert [names(x) for x in listings] == [[f"t{i}"] for i in range(6)] * 3
    c.close()
