"""Object sync jobs (spec §5) through the real Trino crawler against the run's Trino: tables
created, changed and dropped with Trino DDL (as `admin`), in its memory catalog and in its
postgresql catalog, synced by the job runner as the system user `svc_crawler` (it matches the
cluster's immuta.user.admin, see test_trino_crawler.py), asserting the store's tree.

Each test works in a schema of its own and excludes the other catalogs, so it neither sees nor
disturbs what the other e2e tests create."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from pdp.control import SyncRunner, platform_crawlers
from pdp.objects import NEW_TAG, ObjectPath, RemoteState
from pdp.store import Job, JobState, Store
from tests.control.pgremote import LOOPBACK
from tests.e2e.conftest import ADMIN_USERS, E2E

KEY = "tr"
CATALOGS = ("memory", "tpch", "postgresql")


@pytest.fixture
def trino_store(tmp_path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path}/store.db")
    yield store
    store.close()


@pytest.fixture
def schema(e2e: E2E) -> Iterator[str]:
    name = f"jobs_{secrets.token_hex(3)}"
    yield name
    for catalog in ("memory", "postgresql"):
        tables = e2e.query(
            "admin",
            f"SELECT table_name FROM {catalog}.information_schema.tables "
            f"WHERE table_schema = '{name}'",
        )
        for (table,) in tables:
            e2e.query("admin", f"DROP TABLE IF EXISTS {catalog}.{name}.{table}")
        e2e.query("admin", f"DROP SCHEMA IF EXISTS {catalog}.{name}")


def register(e2e: E2E, store: Store, catalog: str, schema: str) -> None:
    """A connection that sees `catalog` alone, and of it `schema` alone (the exclusions)."""
    others = [c for c in CATALOGS if c != catalog]
    endpoint = {
        "host": "127.0.0.1",
        "port": e2e.trino.spec.port,
        "httpScheme": "http",
        "adminUsers": ADMIN_USERS,
        "exclude": [*others, f"{catalog}/[!j]*", f"{catalog}/j[!o]*"],
    }
    with store.write() as writer:
        writer.register_connection(
            KEY,
            "trino",
            endpoint=endpoint,
            credentials={"user": "svc_crawler"},
            is_active=True,
            activate_new_children=True,
        )


def sync(store: Store, state: JobState = JobState.COMPLETED) -> Job:
    # the real Trino listens on loopback, which the default network policy denies
    runner = SyncRunner(store, platform_crawlers(store, network=LOOPBACK))
    job = runner.start(ObjectPath(KEY))
    assert job is not None
    runner.join(120)
    with store.read() as reader:
        done = reader.job(job.id)
    assert done.state is state, done.errors
    return done


def tree(store: Store) -> dict[str, str]:
    """Every stored object below the connection, by dotted path: its remote state."""
    with store.read() as reader:
        hits = reader.search(ObjectPath(KEY), size=1000).hits
    return {".".join(h.path.names): h.remote_state.value for h in hits if h.path.names}


def test_tables_created_in_trino_appear_and_dropped_ones_go_missing(e2e, trino_store, schema):
    s = f"memory.{schema}"
    e2e.query("admin", f"CREATE SCHEMA {s}")
    e2e.query("admin", f"CREATE TABLE {s}.orders (id bigint NOT NULL, region varchar(8))")
    e2e.query("admin", f"CREATE TABLE {s}.refunds (id bigint, amount double)")
    register(e2e, trino_store, "memory", schema)
    job = sync(trino_store)
    assert job.stats["table.added"] == 2
    assert job.stats["failedListings"] == 0
    assert tree(trino_store) == {
        "memory": "present",
        f"memory.{schema}": "present",
        f"memory.{schema}.orders": "present",
        f"memory.{schema}.refunds": "present",
    }
    orders = ObjectPath(KEY, ("memory", schema, "orders"))
    with trino_store.read() as reader:
        columns = reader.columns(orders)
        assert reader.object(orders).remote_type == "TABLE"
    assert [(c.name, c.type, c.nullable, c.position) for c in columns] == [
        ("id", "bigint", False, 1),
        ("region", "varchar(8)", True, 2),
    ]

    e2e.query("admin", f"DROP TABLE {s}.refunds")
    job = sync(trino_store)
    assert job.stats["table.missing"] == 1
    assert tree(trino_store)[f"memory.{schema}.refunds"] == "missing"

    refunds = ObjectPath(KEY, ("memory", schema, "refunds"))
    with trino_store.read() as reader:
        before = reader.object(refunds)
    e2e.query("admin", f"CREATE TABLE {s}.refunds (id bigint, amount double)")
    job = sync(trino_store)
    assert job.stats["table.returned"] == 1
    with trino_store.read() as reader:
        after = reader.object(refunds)
    assert after.id == before.id and after.remote_state is RemoteState.PRESENT


def test_a_column_added_in_trino_is_tagged_new_and_a_new_type_is_taken(e2e, trino_store, schema):
    # the postgresql connector alters column types; the memory connector does not
    s = f"postgresql.{schema}"
    e2e.query("admin", f"CREATE SCHEMA {s}")
    e2e.query("admin", f"CREATE TABLE {s}.accounts (id integer, name varchar(20))")
    register(e2e, trino_store, "postgresql", schema)
    sync(trino_store)
    accounts = ObjectPath(KEY, ("postgresql", schema, "accounts"))
    e2e.query("admin", f"ALTER TABLE {s}.accounts ADD COLUMN opened date")
    e2e.query("admin", f"ALTER TABLE {s}.accounts ALTER COLUMN id SET DATA TYPE bigint")
    job = sync(trino_store)
    assert job.stats["column.added"] == 1
    assert job.stats["column.changed"] == 1
    with trino_store.read() as reader:
        columns = {c.name: c for c in reader.columns(accounts)}
    assert columns["opened"].tags == {NEW_TAG} and columns["opened"].type == "date"
    assert columns["id"].type == "bigint" and not columns["id"].tags
    assert tree(trino_store) == {
        "postgresql": "present",
        f"postgresql.{schema}": "present",
        f"postgresql.{schema}.accounts": "present",
    }


def test_a_system_user_who_is_not_the_clusters_admin_fails_the_job_and_changes_nothing(
    e2e, trino_store, schema
):
    e2e.query("admin", f"CREATE SCHEMA memory.{schema}")
    e2e.query("admin", f"CREATE TABLE memory.{schema}.orders (id bigint)")
    register(e2e, trino_store, "memory", schema)
    sync(trino_store)
    before = tree(trino_store)
    e2e.query("admin", f"DROP TABLE memory.{schema}.orders")
    with trino_store.write() as writer:
        writer.update_connection(KEY, credentials={"user": "alice"})  # listings filtered
    job = sync(trino_store, JobState.FAILED)
    [error] = job.errors
    assert "'alice' does not match immuta.user.admin" in error["message"]
    assert tree(trino_store) == before
