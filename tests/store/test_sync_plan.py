"""Object sync comparison (pure): what a sync inserts, marks and changes."""

from pdp.objects import Kind, RemoteState
from pdp.objects.syncplan import (
    Listing,
    RemoteColumn,
    RemoteObject,
    StoredColumn,
    StoredNode,
    plan_sync,
)

C = RemoteColumn


def tree(*tables, states=None, overrides=None):
    """Stored hc -> hold -> sales -> tables; ids 1, 2, 3, then 10, 11, ..."""
    states, overrides = states or {}, overrides or {}
    nodes = [
        StoredNode(1, None, (), *overrides.get((), (None, None))),
        StoredNode(2, 1, ("hold",), *overrides.get(("hold",), (None, None))),
        StoredNode(3, 2, ("hold", "sales"), *overrides.get(("hold", "sales"), (None, None))),
    ]
    for i, name in enumerate(tables):
        nodes.append(
            StoredNode(10 + i, 3, ("hold", "sales", name), remote_state=states.get(name, "present"))
        )
    return [
        StoredNode(n.id, n.parent_id, n.names, n.is_active, n.activate_new_children,
                   RemoteState(n.remote_state))
        for n in nodes
    ]  # fmt: skip


def tables(*names, columns=None):
    return Listing(("hold", "sales"), tuple(RemoteObject(n, "TABLE", columns) for n in names))


def test_new_table_is_inserted_inactive_by_default():
    plan = plan_sync("hc", tree("a"), {}, [tables("a", "b")])
    assert [(o.name, o.kind, o.is_active) for o in plan.inserts] == [("b", Kind.TABLE, None)]
    assert plan.seen == [10]
    assert plan.stats["table.added"] == 1 and plan.stats["table.unchanged"] == 1


def test_new_table_follows_activate_new_children_above_it():
    stored = tree("a", overrides={("hold",): (None, True)})
    plan = plan_sync("hc", stored, {}, [tables("a", "b")])
    assert plan.inserts[0].is_active is True
    stored = tree("a", overrides={(): (True, False)})
    assert plan_sync("hc", stored, {}, [tables("a", "b")]).inserts[0].is_active is False


def test_new_subtree_is_inserted_parents_first_with_inherited_status():
    stored = tree(overrides={(): (None, True)})
    plan = plan_sync(
        "hc",
        stored,
        {},
        [
            Listing((), (RemoteObject("hold"), RemoteObject("new_db"))),
            Listing(("new_db",), (RemoteObject("s"),)),
            Listing(("new_db", "s"), (RemoteObject("t", "VIEW", (C("x", "int"),)),)),
        ],
    )
    assert [(o.parent, o.name, o.is_active) for o in plan.inserts] == [
        ((), "new_db", True),  # connection inactive, activate new: explicit enable
        (("new_db",), "s", None),  # its parent is active now: inherits
        (("new_db", "s"), "t", None),
    ]
    assert plan.inserts[2].columns == (C("x", "int"),)
    assert plan.stats["database.added"] == 1 and plan.stats["table.added"] == 1


def test_gone_table_is_missing_and_a_gone_schema_takes_its_subtree():
    plan = plan_sync("hc", tree("a", "b"), {}, [tables("a")])
    assert plan.missing == [11]
    plan = plan_sync("hc", tree("a", "b"), {}, [Listing(("hold",), ())])
    assert plan.missing == [3, 10, 11]
    assert plan.stats["schema.missing"] == 1 and plan.stats["table.missing"] == 2


def test_failed_listing_marks_the_container_unknown_and_nothing_missing():
    plan = plan_sync("hc", tree("a", "b"), {}, [Listing.failed(("hold", "sales"), "timeout")])
    assert plan.unknown == [3]
    assert plan.missing == []
    assert plan.errors[0].message == "timeout"
    assert plan.stats["schema.failed"] == 1


def test_missing_table_that_comes_back_is_present_again():
    plan = plan_sync("hc", tree("a", states={"a": "missing"}), {}, [tables("a")])
    assert plan.seen == [10] and plan.missing == [] and plan.inserts == []
    assert plan.stats["table.returned"] == 1


def test_columns_of_a_known_table():
    stored_columns = {
        10: [
            StoredColumn(100, "id", "int", False, 1),
            StoredColumn(101, "amount", "int", True, 2),
            StoredColumn(102, "old", "text", True, 3),
        ]
    }
    listed = (C("id", "int", False, 1), C("amount", "decimal(10,2)", True, 2), C("note", "text"))
    plan = plan_sync("hc", tree("a"), stored_columns, [tables("a", columns=listed)])
    assert [(a.column.name, a.new) for a in plan.column_adds] == [("note", True)]
    assert [(c.column_id, c.column.type) for c in plan.column_changes] == [(101, "decimal(10,2)")]
    assert [(d.column_id, d.name) for d in plan.column_deletes] == [(102, "old")]


def test_columns_not_listed_are_not_compared():
    stored_columns = {10: [StoredColumn(100, "id", "int", False, 1)]}
    plan = plan_sync("hc", tree("a"), stored_columns, [tables("a", columns=None)])
    assert not plan.column_deletes


def test_ambiguous_names_are_skipped_and_the_rest_ingested():
    listing = Listing(
        ("hold", "sales"), (RemoteObject("a"), RemoteObject("Dup"), RemoteObject("DUP"))
    )
    plan = plan_sync("hc", tree("a", "dup"), {}, [listing])
    assert plan.inserts == []
    assert plan.missing == []  # the stored "dup" is neither confirmed nor missing
    assert [c.path for c in plan.conflicts] == [("hold", "sales", "dup")]
    assert plan.stats["table.skipped"] == 2


def test_names_are_matched_case_insensitively():
    plan = plan_sync("hc", tree("Orders"), {}, [tables("ORDERS")])
    assert plan.inserts == [] and plan.seen == [10]


def test_fail_safe_trips_above_the_threshold():
    plan = plan_sync("hc", tree("a", "b", "c", "d"), {}, [tables()])
    assert plan.fail_safe is not None and "4 of 4" in plan.fail_safe
    plan = plan_sync("hc", tree("a", "b", "c", "d"), {}, [tables("a")])
    assert plan.fail_safe is None  # 3 of 4 is exactly 75%, not more
    plan = plan_sync("hc", tree("a", "b", "c"), {}, [tables()])
    assert plan.fail_safe is None  # fewer than four present tables
    plan = plan_sync("hc", tree("a", "b", "c", "d"), {}, [tables("a")], fail_safe_threshold=0.5)
    assert plan.fail_safe is not None


def test_unknown_parent_is_an_error():
    plan = plan_sync("hc", tree(), {}, [Listing(("nope", "x"), ())])
    assert plan.errors and not plan.changes


def test_a_container_listed_twice_counts_once():
    plan = plan_sync("hc", tree(), {}, [tables("a"), tables("a", "b")])
    assert [o.name for o in plan.inserts] == ["a"]
    assert plan.errors[0].message == "listed twice in one sync; ignored"


def test_a_column_listed_twice_is_kept_once():
    plan = plan_sync("hc", tree(), {}, [tables("a", columns=(C("x", "int"), C("x", "text")))])
    assert plan.inserts[0].columns == (C("x", "int"),)
    assert "column 'x' listed twice" in plan.conflicts[0].message
