"""Object sync jobs (spec §5) through the real PostgreSQL crawler: the job runner opens the
crawler the way the service does (`platform_crawlers`), and each test changes a real database
with DDL between syncs. The crawler signs in as a plain role of its own, so that revoking a
privilege means something (a superuser sees everything)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.postgres import Postgres
from pdp.control import SyncRunner
from pdp.objects import NEW_TAG, ObjectPath, RemoteState
from pdp.store import Job, JobState, Store
from tests.control.conftest import wait_job
from tests.control.pgremote import KEY, PASSWORD_ENV, Remote, crawlers, credentials, endpoint


@pytest.fixture
def pg_runner(store: Store) -> Iterator[SyncRunner]:
    runner = SyncRunner(store, crawlers(store))
    yield runner
    runner.join()


def register(store: Store, remote: Remote) -> None:
    with store.write() as writer:
        writer.register_connection(
            KEY,
            "postgresql",
            endpoint=endpoint(remote),
            credentials=credentials(remote),
            is_active=True,
            activate_new_children=True,
        )


def sync(runner: SyncRunner) -> Job:
    job = runner.start(ObjectPath(KEY))
    assert job is not None
    done = wait_job(runner.store, job.id)
    runner.join()
    return done


@pytest.fixture
def sync_after(store: Store, pg_runner: SyncRunner, remote: Remote) -> Callable[..., Job]:
    """`sync_after(*ddl)`: the database registered and synced once, then changed by `ddl`;
    the job of the sync that follows."""

    def run(*ddl: str) -> Job:
        register(store, remote)
        sync(pg_runner)
        remote.ddl(*ddl)
        return sync(pg_runner)

    return run


def table_names(store: Store, schema: ObjectPath) -> list[str]:
    with store.read() as reader:
        return [hit.path.name for hit in reader.children(schema).hits]


def snapshot(store: Store) -> object:
    with store.read() as reader:
        found = reader.search(ObjectPath(KEY), size=1000)
        columns = {
            hit.path.url: reader.columns(hit.path) for hit in found.hits if len(hit.path.names) == 3
        }
    return found, columns


def test_registered_tables_appear_with_their_columns(store, pg_runner, remote):
    register(store, remote)
    job = sync(pg_runner)
    assert job.state is JobState.COMPLETED, job.errors
    assert job.stats["table.added"] == 4
    assert job.stats["failedListings"] == 0
    assert table_names(store, remote.path()) == ["hr", "public", "sales"]
    assert table_names(store, remote.path("sales")) == ["customers", "orders", "refunds"]
    with store.read() as reader:
        orders = reader.object(remote.path("sales", "orders"))
        columns = reader.columns(remote.path("sales", "orders"))
    assert orders.remote_state is RemoteState.PRESENT
    assert orders.remote_type == "TABLE"
    assert [(c.name, c.type, c.nullable, c.position) for c in columns] == [
        ("id", "integer", False, 1),
        ("total", "numeric(10,2)", True, 2),
    ]
    assert all(not c.tags for c in columns)  # a new table's columns come without `New`


def test_a_column_added_to_a_known_table_is_tagged_new(store, remote, sync_after):
    job = sync_after("ALTER TABLE sales.orders ADD COLUMN currency char(3)")
    assert job.state is JobState.COMPLETED, job.errors
    assert job.stats["column.added"] == 1
    with store.read() as reader:
        columns = {c.name: c for c in reader.columns(remote.path("sales", "orders"))}
    assert columns["currency"].tags == {NEW_TAG}
    assert columns["currency"].type == "character(3)"
    assert not columns["id"].tags and not columns["total"].tags


def test_a_column_whose_type_changed_is_updated_without_a_tag(store, remote, sync_after):
    job = sync_after("ALTER TABLE sales.customers ALTER COLUMN name TYPE varchar(200)")
    assert job.state is JobState.COMPLETED, job.errors
    assert job.stats["column.changed"] == 1
    assert "column.added" not in job.stats
    with store.read() as reader:
        columns = {c.name: c for c in reader.columns(remote.path("sales", "customers"))}
    assert columns["name"].type == "character varying(200)"
    assert not columns["name"].tags


def test_a_dropped_column_leaves_the_dictionary(store, remote, sync_after):
    job = sync_after("ALTER TABLE sales.customers DROP COLUMN name")
    assert job.stats["column.deleted"] == 1
    with store.read() as reader:
        assert [c.name for c in reader.columns(remote.path("sales", "customers"))] == ["id"]


def test_a_dropped_table_is_marked_missing_and_stays_in_the_tree(store, remote, sync_after):
    job = sync_after("DROP TABLE sales.refunds")
    assert job.state is JobState.COMPLETED, job.errors
    assert job.stats["table.missing"] == 1
    with store.read() as reader:
        gone = reader.object(remote.path("sales", "refunds"))
        assert gone.remote_state is RemoteState.MISSING
        assert reader.effective_settings(gone.path).is_active.value is False
    assert "refunds" in table_names(store, remote.path("sales"))


def test_a_table_dropped_and_recreated_comes_back_as_the_same_object(store, pg_runner, remote):
    register(store, remote)
    sync(pg_runner)
    refunds = remote.path("sales", "refunds")
    with store.write() as writer:
        writer.set_settings(refunds, is_active=False)  # an override the table must keep
    with store.read() as reader:
        before = reader.object(refunds)
    remote.ddl("DROP TABLE sales.refunds")
    sync(pg_runner)
    remote.ddl("CREATE TABLE sales.refunds (id int, order_id int, reason text)")
    job = sync(pg_runner)
    assert job.state is JobState.COMPLETED, job.errors
    assert job.stats["table.returned"] == 1
    assert "table.added" not in job.stats
    with store.read() as reader:
        after = reader.object(refunds)
        columns = [c.name for c in reader.columns(refunds)]
    assert after.id == before.id
    assert after.data_source_id == before.data_source_id
    assert after.remote_state is RemoteState.PRESENT
    assert after.is_active is False
    assert columns == ["id", "order_id", "reason"]


def test_an_unreadable_schema_is_unknown_not_missing(store, pg_runner, remote, sync_after):
    job = sync_after(f"REVOKE USAGE ON SCHEMA hr FROM {remote.role}")
    assert job.state is JobState.COMPLETED, job.errors
    assert job.stats["failedListings"] == 1
    [error] = job.errors
    assert error["path"] == remote.path("hr").url
    assert "permission denied" in error["message"]
    with store.read() as reader:
        assert reader.object(remote.path("hr")).remote_state is RemoteState.UNKNOWN
        people = reader.object(remote.path("hr", "people"))
        assert people.remote_state is RemoteState.PRESENT
        assert reader.object(remote.path("sales", "orders")).remote_state is RemoteState.PRESENT
    # readable again: known again
    remote.ddl(f"GRANT USAGE ON SCHEMA hr TO {remote.role}")
    assert sync(pg_runner).stats["failedListings"] == 0
    with store.read() as reader:
        assert reader.object(remote.path("hr")).remote_state is RemoteState.PRESENT


def _require_password_logins(pg: Postgres, role: str) -> Iterator[None]:
    """The throwaway cluster trusts every login; ask for a password from `role` alone, for the
    duration of one test, by putting one line in front of the cluster's pg_hba.conf."""
    with pg.connect() as admin:
        hba = Path(admin.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
    try:
        original = hba.read_text()
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
    except OSError as error:
        pytest.skip(f"cannot edit {hba} of this server: {error}")
    try:
        with pg.connect() as admin:
            admin.execute("SELECT pg_reload_conf()")
        yield
    finally:
        hba.write_text(original)
        with pg.connect() as admin:
            admin.execute("SELECT pg_reload_conf()")


@pytest.fixture
def password_logins(pg: Postgres, remote: Remote) -> Iterator[None]:
    if pg.host not in ("127.0.0.1", "localhost"):
        pytest.skip("needs the throwaway cluster")
    yield from _require_password_logins(pg, remote.role)


def test_a_wrong_password_fails_the_job_with_its_reason_and_changes_nothing(
    store, pg_runner, remote, password_logins, monkeypatch
):
    register(store, remote)
    assert sync(pg_runner).state is JobState.COMPLETED  # the right password signs in
    remote.ddl("DROP TABLE sales.refunds", "CREATE TABLE sales.invoices (id int)")
    before = snapshot(store)
    monkeypatch.setenv(PASSWORD_ENV, "not-" + remote.password)
    job = sync(pg_runner)
    assert job.state is JobState.FAILED
    [error] = job.errors
    assert error["message"] == "cannot list pg: authentication failed"
    assert remote.password not in str(job.errors)
    assert snapshot(store) == before


def test_a_dropped_schema_goes_missing_with_its_tables(store, remote, sync_after):
    job = sync_after("DROP SCHEMA hr CASCADE")
    assert job.state is JobState.COMPLETED, job.errors
    assert job.stats["schema.missing"] == 1
    with store.read() as reader:
        assert reader.object(remote.path("hr")).remote_state is RemoteState.MISSING
        assert reader.object(remote.path("hr", "people")).remote_state is RemoteState.MISSING
        assert reader.object(remote.path("sales", "orders")).remote_state is RemoteState.PRESENT


def test_dropping_most_tables_at_once_trips_the_fail_safe(store, sync_after):
    job = sync_after("DROP TABLE sales.orders, sales.customers, sales.refunds, hr.people")
    assert job.state is JobState.FAILED
    assert "fail-safe" in job.errors[-1]["message"]
    with store.read() as reader:
        assert (
            reader.search(ObjectPath(KEY), kind="table", remote_state=RemoteState.MISSING).count
            == 0
        )


def test_two_tables_whose_names_differ_in_case_only_are_skipped_and_reported(
    store, pg_runner, remote
):
    remote.ddl('CREATE TABLE sales."Orders" (id int)')  # beside sales.orders
    register(store, remote)
    job = sync(pg_runner)
    assert job.state is JobState.COMPLETED
    assert table_names(store, remote.path("sales")) == ["customers", "refunds"]
    [conflict] = job.errors
    assert conflict["path"].casefold() == remote.path("sales", "orders").url.casefold()
    assert "several remote objects" in conflict["message"]
