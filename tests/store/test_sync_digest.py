"""Column digests (both backends): a sync reads and compares the stored columns of a table only
when its listed columns differ from the digest stored with it, with the same outcomes."""

from sqlalchemy import event, select

from pdp.objects import ObjectPath
from pdp.objects.syncplan import RemoteColumn
from pdp.store.schema import objects
from tests.store.test_sync_apply import FIRST, listing, registered, sync, table

P = ObjectPath.of
C = RemoteColumn
ORDERS = P("hc", "hold", "sales", "orders")


def column_reads(store):
    """Count the statements that read the `columns` table."""
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        text = " ".join(statement.split()).lower()
        if text.startswith("select") and "from columns" in text:
            seen.append(text)

    event.listen(store.engine, "before_cursor_execute", before)
    return seen


def digests(store):
    with store.engine.connect() as conn:
        rows = conn.execute(select(objects.c.name, objects.c.columns_digest)).all()
    return dict(rows)


def test_new_tables_get_a_digest_and_an_unchanged_sync_reads_no_columns(store):
    registered(store)
    sync(store, FIRST)
    before = digests(store)
    assert before["orders"] and before["returns"] and before["sales"] is None
    assert before["orders"] != before["customers"]
    reads = column_reads(store)
    outcome = sync(store, FIRST)
    assert outcome.applied and not outcome.plan.changes
    assert reads == []
    assert digests(store) == before


def test_a_changed_table_alone_is_compared_and_its_digest_moves(store):
    registered(store)
    sync(store, FIRST)
    before = digests(store)
    changed = [
        *FIRST[:2],
        listing(
            ("hold", "sales"),
            table("orders", C("id", "bigint", False, 1), C("amount", "numeric", True, 2)),
            table("customers", C("id", "bigint", False, 1)),
            table("returns"),
            table("refunds"),
        ),
        FIRST[3],
    ]
    reads = column_reads(store)
    outcome = sync(store, changed)
    assert outcome.stats.get("column.changed") == 1
    assert len(reads) == 1  # the one compared table's columns, in one query
    after = digests(store)
    assert after["orders"] != before["orders"]
    assert {k: v for k, v in after.items() if k != "orders"} == {
        k: v for k, v in before.items() if k != "orders"
    }
    reads.clear()
    assert not sync(store, changed).plan.changes
    assert reads == []


def test_columns_set_by_hand_are_compared_again(store):
    registered(store)
    sync(store, FIRST)
    with store.write() as tx:
        tx.set_columns(ORDERS, [C("id", "bigint", False, 1)])
    assert digests(store)["orders"] is None
    outcome = sync(store, FIRST)
    assert outcome.stats.get("column.added") == 1  # `amount` again, against the stored dictionary
    with store.read() as tx:
        assert [c.name for c in tx.columns(ORDERS)] == ["id", "amount"]
    assert digests(store)["orders"] is not None


def test_a_column_listed_twice_is_reported_on_every_sync(store):
    registered(store)
    twice = table("dup", C("id", "bigint", False, 1), C("id", "text", True, 2))
    listings = [*FIRST[:3], listing(("hold", "hr"), twice)]
    first = sync(store, listings)
    again = sync(store, listings)
    assert len(first.plan.conflicts) == len(again.plan.conflicts) == 1
    assert not again.plan.changes


def test_last_seen_by_parent_or_by_object(store):
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    t1 = t0 + timedelta(days=1)
    registered(store)
    sync(store, FIRST, now=t0)
    # `sales` listed without `refunds` (gone: stamped by object), `hr` listed whole (by parent)
    sales = listing(("hold", "sales"), *FIRST[2].children[:3])
    sync(store, [*FIRST[:2], sales, FIRST[3]], now=t1)
    with store.read() as tx:
        seen = {
            name: tx.object(P("hc", "hold", schema, name))
            for schema, name in (("sales", "orders"), ("sales", "refunds"), ("hr", "people"))
        }
    assert seen["orders"].last_seen == seen["people"].last_seen == t1
    assert seen["refunds"].last_seen == t0
    assert seen["refunds"].remote_state.value == "missing"
