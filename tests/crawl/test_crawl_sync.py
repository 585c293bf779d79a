"""Crawler listings feed the pure sync rules as they are: a real PostgreSQL crawl, planned with
`plan_sync` (what the sync job does between the two)."""

from __future__ import annotations

from pdp.crawl import open_crawler
from pdp.objects.syncplan import StoredNode, plan_sync


def test_a_first_crawl_plans_every_object_with_its_columns(pg, db):
    endpoint = {"host": pg.host, "port": pg.port, "database": db}
    credentials = {"user": pg.user} | ({"passwordEnv": "P"} if pg.password else {})
    c = open_crawler("postgresql", endpoint, credentials, {"P": pg.password or ""})
    listings = [c.list(()), c.list((db,)), c.list((db, "sales"))]
    plan = plan_sync("pg", [StoredNode(1, None, ())], {}, listings)
    inserted = {(*n.parent, n.name): n for n in plan.inserts}
    assert (db,) in inserted and (db, "sales") in inserted
    orders = inserted[(db, "sales", "orders")]
    assert orders.remote_type == "TABLE"
    assert [col.name for col in orders.columns] == ["id", "total", "note"]
    assert plan.errors == [] and plan.missing == []


def test_losing_usage_on_a_schema_marks_it_unknown_and_no_table_missing(pg, db):
    role = f"{db}_reader"
    stored = [
        StoredNode(1, None, ()),
        StoredNode(2, 1, (db,)),
        StoredNode(3, 2, (db, "sales")),
        StoredNode(4, 3, (db, "sales", "orders")),
    ]
    with pg.connect(db) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute("REVOKE ALL ON SCHEMA sales FROM PUBLIC")
    try:
        endpoint = {"host": pg.host, "port": pg.port, "database": db}
        c = open_crawler("postgresql", endpoint, {"user": role}, {})
        listing = c.list((db, "sales"))
        c.close()
    finally:
        with pg.connect() as admin:
            admin.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            admin.execute(f'DROP ROLE "{role}"')
    plan = plan_sync("pg", stored, {}, [listing])
    assert plan.unknown == [3]
    assert plan.missing == []
    assert "permission denied for schema sales" in plan.errors[0].message
