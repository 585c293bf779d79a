"""The repository methods that replace SQL written outside the store: a connection registered
from one `NewConnection`, its stored tree for a crawl, "holds any permission", a data source id
moving to the table it matched, credentials kept as sealed, a job under an id its runner chose,
and the one name for "the store is down"."""

import pytest
from sqlalchemy import create_engine

from pdp.objects import DuplicateKey, InvalidInput, Kind, ObjectPath
from pdp.policy.model import Technology
from pdp.store import (
    STORE_UNAVAILABLE,
    ConnectionState,
    JobState,
    JobTrigger,
    JobType,
    NewConnection,
    PrincipalKind,
    Role,
    Secrets,
    Store,
)

P = ObjectPath.of


def test_a_new_connection_is_registered_as_it_is_spelled(store):
    new = NewConnection(
        "hc",
        Technology.TRINO,
        endpoint={"host": "trino"},
        settings={"listingConcurrency": 2},
        schedule="0 3 * * *",
        is_active=True,
        fail_safe_threshold=0.5,
    )
    with store.write() as tx:
        made = tx.register(new)
        root = tx.object(P("hc"))
    assert (made.key, made.technology, made.schedule) == ("hc", Technology.TRINO, "0 3 * * *")
    assert made.endpoint == {"host": "trino"} and made.settings == {"listingConcurrency": 2}
    assert made.fail_safe_threshold == 0.5 and made.state is ConnectionState.ACTIVE
    assert root.is_active is True and root.activate_new_children is None
    with pytest.raises(DuplicateKey), store.write() as tx:
        tx.register(NewConnection("HC", Technology.SNOWFLAKE))


def test_the_keyword_spelling_is_the_same_registration(store):
    with store.write() as tx:
        by_keywords = tx.register_connection("a", "trino", endpoint={"host": "h"})
        by_record = tx.register(NewConnection("b", Technology.TRINO, endpoint={"host": "h"}))
    assert (by_keywords.technology, by_keywords.endpoint) == (
        by_record.technology,
        by_record.endpoint,
    )
    with pytest.raises(InvalidInput) as refused, store.write() as tx:
        tx.register(NewConnection("c", Technology.TRINO, schedule="whenever"))
    assert refused.value.field == "schedule"


def test_checkable_is_the_record_a_check_runs_against():
    new = NewConnection("hc", Technology.TRINO, endpoint={"host": "h"}, settings={"a": 1})
    record = new.checkable({"user": "pdp"}, ConnectionState.UPGRADING)
    assert (record.key, record.technology, record.state) == (
        "hc",
        Technology.TRINO,
        ConnectionState.UPGRADING,
    )
    assert record.credentials == {"user": "pdp"} and record.settings == {"a": 1}
    assert record.created_at == record.updated_at and record.last_sync_at is None


def test_the_stored_tree_lists_parents_first(store):
    with store.write() as tx:
        tx.register_connection("hc", "trino")
        tx.put_object(P("hc", "hold"))
        tx.put_object(P("hc", "hold", "sales"))
        tx.put_object(P("hc", "hold", "sales", "orders"), remote_type="TABLE")
    with store.read() as tx:
        nodes = tx.stored_tree("HC")
    assert [(n.kind, n.names) for n in nodes] == [
        (Kind.CONNECTION, ()),
        (Kind.DATABASE, ("hold",)),
        (Kind.SCHEMA, ("hold", "sales")),
        (Kind.TABLE, ("hold", "sales", "orders")),
    ]


@pytest.mark.parametrize(
    ("user", "groups", "holds"),
    [
        ("alice", (), True),  # granted to her by name
        ("bob", (), False),
        ("bob", ("stewards",), True),  # through a group
        ("bob", ("others",), False),
        ("stewards", (), False),  # a user named like the group holds nothing
    ],
)
def test_holds_any_permission(store, user, groups, holds):
    with store.write() as tx:
        tx.register_connection("hc", "trino")
        tx.put_object(P("hc", "hold"))
        tx.grant(P("hc", "hold"), "alice", Role.DATA_OWNER)
        tx.grant(P("hc"), "stewards", Role.DATA_OWNER, principal_kind=PrincipalKind.GROUP)
    with store.read() as tx:
        assert tx.holds_any_permission(user, groups) is holds


def test_a_data_source_id_moves_to_the_table_that_matched(store):
    with store.write() as tx:
        tx.register_connection("hc", "trino")
        tx.put_object(P("hc", "hold"))
        tx.put_object(P("hc", "hold", "sales"))
        old = tx.put_object(P("hc", "hold", "sales", "old"), remote_type="TABLE")
        tx.put_object(P("hc", "hold", "sales", "new"), remote_type="TABLE")
        tx.assign_data_source(P("hc", "hold", "sales", "new"), old.data_source_id)
    with store.read() as tx:
        assert tx.object(P("hc", "hold", "sales", "new")).data_source_id == old.data_source_id
        assert tx.object(P("hc", "hold", "sales", "old")).data_source_id is None


def test_sealed_credentials_are_stored_as_they_are(backend, new_database):
    store = Store.open(new_database(backend), secret_key=Secrets.generate_key())
    try:
        sealed = store.secrets.seal({"user": "pdp", "password": "hunter2"})
        with store.write() as tx:
            tx.register_connection("hc", "snowflake")
            tx.set_sealed_credentials("HC", sealed)
        with store.read() as tx:
            stored = tx.connection("hc").credentials
        assert stored == sealed  # not sealed a second time
        assert store.secrets.reveal(stored)["password"] == "hunter2"
    finally:
        store.close()


def test_a_job_takes_the_id_its_runner_chose(store):
    with store.write() as tx:
        tx.register_connection("hc", "trino")
        chosen = tx.create_job(JobType.SYNC, JobTrigger.MANUAL, P("hc"), job_id="job-1")
        minted = tx.create_job(JobType.SYNC, JobTrigger.MANUAL, P("hc"))
    assert chosen.id == "job-1" and chosen.state is JobState.CREATED
    assert minted.id not in ("", "job-1")
    with store.read() as tx:
        assert tx.running_job("hc").id == "job-1"


def test_an_unreachable_store_raises_what_store_unavailable_names(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/missing/dir/store.db")
    with pytest.raises(STORE_UNAVAILABLE):
        Store(engine).version()
