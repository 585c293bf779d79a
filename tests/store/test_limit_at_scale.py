"""The 100,000-descendant rule on a real tree of 100,000 tables (SQLite: it takes seconds)."""

import pytest

from pdp.objects import DESCENDANT_LIMIT, ObjectPath, TooManyDescendants
from pdp.objects.syncplan import Listing, RemoteObject
from pdp.store import Store

P = ObjectPath.of


@pytest.mark.timeout(600)
def test_enabling_a_database_of_100000_tables_is_refused_and_a_schema_is_not(new_database):
    store = Store.open(new_database("sqlite"))
    try:
        schemas = [f"s{i}" for i in range(4)]
        per_schema = DESCENDANT_LIMIT // len(schemas)
        listings = [
            Listing((), (RemoteObject("lake"),)),
            Listing(("lake",), tuple(RemoteObject(s) for s in schemas)),
            *(
                Listing(("lake", s), tuple(RemoteObject(f"t{n}") for n in range(per_schema)))
                for s in schemas
            ),
        ]
        with store.write() as tx:
            tx.register_connection("hc", "trino")
            tx.sync("hc", listings)
        with pytest.raises(TooManyDescendants) as refused, store.write() as tx:
            tx.set_settings(P("hc", "lake"), is_active=True)
        assert "100004 descendants" in str(refused.value)
        with store.write() as tx:
            tx.set_settings(P("hc", "lake", "s0"), is_active=True)  # 25,000: fine anyway
            tx.delete_object(P("hc", "lake", "s3", "t0"))
            tx.delete_object(P("hc", "lake", "s3", "t1"))
            tx.delete_object(P("hc", "lake", "s3", "t2"))
            tx.delete_object(P("hc", "lake", "s3", "t3"))
            tx.delete_object(P("hc", "lake", "s3", "t4"))
            assert tx.descendant_count(P("hc", "lake")) == DESCENDANT_LIMIT - 1
            tx.set_settings(P("hc", "lake"), is_active=True)  # 99,999: allowed
            tx.set_settings(P("hc"), is_active=False)  # disabling is never limited
    finally:
        store.close()
