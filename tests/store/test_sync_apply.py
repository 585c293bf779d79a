"""Object sync applied to the store (both backends): one write, one version, the spec's rules."""

from pdp.objects import Kind, ObjectPath, RemoteState
from pdp.objects.syncplan import Listing, RemoteColumn, RemoteObject
from pdp.store import RequestKind, RequestState

P = ObjectPath.of
C = RemoteColumn


def listing(parent, *children):
    return Listing(tuple(parent), tuple(children))


def table(name, *columns):
    return RemoteObject(name, "TABLE", tuple(columns))


FIRST = [
    listing((), RemoteObject("hold")),
    listing(("hold",), RemoteObject("sales"), RemoteObject("hr")),
    listing(
        ("hold", "sales"),
        table("orders", C("id", "bigint", False, 1), C("amount", "integer", True, 2)),
        table("customers", C("id", "bigint", False, 1)),
        table("returns"),
        table("refunds"),
    ),
    listing(("hold", "hr"), table("people", C("name", "varchar", True, 1))),
]


def registered(store, **settings):
    with store.write() as tx:
        tx.register_connection("hc", "trino", **settings)


def sync(store, listings, **options):
    with store.write() as tx:
        return tx.sync("hc", listings, **options)


def test_first_sync_builds_the_tree_in_one_version(store):
    registered(store)
    before = store.version()
    outcome = sync(store, FIRST)
    assert outcome.applied
    assert store.version() == before + 1
    assert outcome.stats == {
        "database.added": 1,
        "schema.added": 2,
        "table.added": 5,
    }
    with store.read() as tx:
        orders = tx.object(P("hc", "hold", "sales", "orders"))
        columns = tx.columns(orders.path)
        settings = tx.effective_settings(orders.path)
    assert orders.kind is Kind.TABLE and orders.remote_state is RemoteState.PRESENT
    assert [(c.name, c.type, c.tags) for c in columns] == [
        ("id", "bigint", frozenset()),  # tables discovered now: no `New` tag
        ("amount", "integer", frozenset()),
    ]
    assert (settings.is_active.value, settings.is_active.inherited_from) == (False, "default")


def test_new_objects_follow_activate_new_children(store):
    registered(store, activate_new_children=True)
    sync(store, FIRST)
    with store.read() as tx:
        hold = tx.object(P("hc", "hold"))
        orders = tx.effective_settings(P("hc", "hold", "sales", "orders"))
    assert hold.is_active is True  # the one override: below it, children inherit
    assert (orders.is_active.value, orders.is_active.inherited_from) == (True, "hc/hold")


def test_columns_added_deleted_and_changed_on_a_known_table(store):
    registered(store)
    sync(store, FIRST)
    orders = table("orders", C("id", "bigint", False, 1), C("amount", "decimal(10,2)", True, 2),
                   C("note", "varchar", True, 3))  # fmt: skip
    customers = table("customers")  # its `id` column was deleted
    outcome = sync(
        store,
        [listing(("hold", "sales"), orders, customers, table("returns"), table("refunds"))],
        create_requests=True,
    )
    assert outcome.stats["column.added"] == 1
    assert outcome.stats["column.changed"] == 1
    assert outcome.stats["column.deleted"] == 1
    with store.read() as tx:
        columns = {c.name: c for c in tx.columns(P("hc", "hold", "sales", "orders"))}
        assert columns["note"].tags == {"New"}
        assert columns["amount"].type == "decimal(10,2)" and columns["amount"].tags == set()
        assert tx.columns(P("hc", "hold", "sales", "customers")) == []
        pending = tx.requests(state=RequestState.PENDING)
    assert sorted((r.kind, r.column_name, r.path.url) for r in pending) == [
        (RequestKind.COLUMN_ADDED, "note", "hc/hold/sales/orders"),
        (RequestKind.COLUMN_DELETED, "id", "hc/hold/sales/customers"),
    ]
    added = next(r for r in pending if r.kind is RequestKind.COLUMN_ADDED)
    with store.write() as tx:
        tx.resolve_request(added.id, "alice")
    with store.read() as tx:
        columns = {c.name: c for c in tx.columns(P("hc", "hold", "sales", "orders"))}
        assert columns["note"].tags == set()  # validated: `New` comes off
        assert tx.requests(state=RequestState.VALIDATED)[0].resolved_by == "alice"


def test_missing_table_comes_back_with_its_identity_and_status(store):
    registered(store)
    sync(store, FIRST)
    path = P("hc", "hold", "sales", "orders")
    with store.write() as tx:
        tx.set_settings(path, is_active=True)
        before = tx.object(path)
    gone = [listing(("hold", "sales"), table("customers"), table("returns"), table("refunds"))]
    sync(store, gone)
    with store.read() as tx:
        missing = tx.object(path)
        settings = tx.effective_settings(path)
    assert missing.remote_state is RemoteState.MISSING
    assert missing.is_active is True  # the override is kept
    assert (settings.is_active.value, settings.is_active.origin) == (False, "missing")
    sync(store, FIRST[2:3])
    with store.read() as tx:
        back = tx.object(path)
    assert back.remote_state is RemoteState.PRESENT
    assert back.data_source_id == before.data_source_id and back.id == before.id
    assert back.is_active is True


def test_a_gone_schema_goes_missing_with_its_subtree(store):
    registered(store)
    sync(store, FIRST)
    sync(store, [listing(("hold",), RemoteObject("sales"))])
    with store.read() as tx:
        assert tx.object(P("hc", "hold", "hr")).remote_state is RemoteState.MISSING
        assert tx.object(P("hc", "hold", "hr", "people")).remote_state is RemoteState.MISSING
        assert tx.object(P("hc", "hold", "sales")).remote_state is RemoteState.PRESENT


def test_a_failed_listing_marks_unknown_and_nothing_missing(store):
    registered(store)
    sync(store, FIRST)
    outcome = sync(store, [Listing.failed(("hold", "sales"), "permission denied")])
    assert outcome.applied and outcome.plan.errors[0].message == "permission denied"
    with store.read() as tx:
        assert tx.object(P("hc", "hold", "sales")).remote_state is RemoteState.UNKNOWN
        page = tx.children(P("hc", "hold", "sales"), remote_state=RemoteState.PRESENT)
    assert page.count == 4


def test_the_fail_safe_keeps_the_last_good_state(store):
    registered(store)
    sync(store, FIRST)
    before = store.version()
    outcome = sync(store, [listing(("hold", "sales"))])  # all four tables gone at once
    assert not outcome.applied
    assert "would mark 4 of 5 present tables missing" in outcome.plan.fail_safe
    assert store.version() == before + 1  # the write committed nothing else
    with store.read() as tx:
        assert tx.children(P("hc", "hold", "sales"), remote_state=RemoteState.MISSING).count == 0


def test_ambiguous_names_are_reported_and_skipped(store):
    registered(store)
    sync(store, FIRST[:2])
    outcome = sync(store, [listing(("hold", "sales"), table("a"), table("Dup"), table("DUP"))])
    assert [c.path for c in outcome.plan.conflicts] == [("hold", "sales", "dup")]
    with store.read() as tx:
        assert [h.path.name for h in tx.children(P("hc", "hold", "sales")).hits] == ["a"]


def test_sync_records_the_time(store):
    registered(store)
    sync(store, FIRST)
    with store.read() as tx:
        assert tx.connection("hc").last_sync_at is not None


def test_first_and_last_seen(store):
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    registered(store)
    sync(store, FIRST, now=t0)
    sync(store, FIRST[2:3], now=t0 + timedelta(days=1))
    with store.read() as tx:
        orders = tx.object(P("hc", "hold", "sales", "orders"))
        people = tx.object(P("hc", "hold", "hr", "people"))
    assert (orders.first_seen, orders.last_seen) == (t0, t0 + timedelta(days=1))
    assert (people.first_seen, people.last_seen) == (t0, t0)  # its schema was not listed
