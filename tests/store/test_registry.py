"""The store compiled into registry entries the PDP snapshot takes, next to the YAML ones."""

from hypothesis import given
from hypothesis import strategies as st

from pdp.core.model import Access
from pdp.objects import Node, ObjectPath, RemoteState
from pdp.objects.paths import Kind
from pdp.objects.settings import effective_is_active
from pdp.objects.syncplan import Listing, RemoteObject
from pdp.policy import DataSource, ObjectType, Policy, PolicySnapshot, Technology
from pdp.store.registry import (
    TreeRow,
    compile_connection,
    merge_registries,
    object_type,
    read_registry,
)

P = ObjectPath.of


def build(store):
    with store.write() as tx:
        tx.register_connection("hc", "trino")
        tx.register_connection(
            "sf", "snowflake", settings={"trinoCatalogs": {"ANALYTICS": "sfcat"}}
        )
        tx.sync(
            "hc",
            [
                Listing((), (RemoteObject("hold"),)),
                Listing(("hold",), (RemoteObject("sales"), RemoteObject("hr"))),
                Listing(
                    ("hold", "sales"),
                    (
                        RemoteObject("orders", "BASE TABLE"),
                        RemoteObject("v", "VIEW"),
                        RemoteObject("old", "TABLE"),
                    ),
                ),
                Listing(("hold", "hr"), (RemoteObject("people"),)),
            ],
        )
        tx.put_object(P("sf", "ANALYTICS"))
        tx.put_object(P("sf", "ANALYTICS", "PUBLIC"))
        tx.put_object(P("sf", "ANALYTICS", "PUBLIC", "EVENTS"), is_active=True)
        tx.set_settings(P("hc", "hold", "sales"), is_active=True)
        tx.set_settings(P("hc", "hold", "sales", "v"), is_active=False)
        tx.add_tag(P("hc", "hold", "sales", "orders"), "PII.Email")
    with store.write() as tx:  # `old` disappears: a missing table is no data source
        tx.sync(
            "hc",
            [Listing(("hold", "sales"), (RemoteObject("orders"), RemoteObject("v")))],
        )


def test_active_present_tables_are_data_sources(store):
    build(store)
    registry = read_registry(store)
    assert registry.version == store.version()
    assert registry.connections == {"hc": Technology.TRINO, "sf": Technology.SNOWFLAKE}
    by_path = {s.path: s for s in registry.sources}
    assert sorted(by_path) == ["hc.hold.sales.orders", "sf.ANALYTICS.PUBLIC.EVENTS"]
    orders = by_path["hc.hold.sales.orders"]
    assert orders.type is ObjectType.TABLE and orders.trino_catalog == "hold"
    assert orders.tags == {"pii.email", "connections.trino.hc.hold.sales"}
    events = by_path["sf.ANALYTICS.PUBLIC.EVENTS"]
    assert events.trino_catalog == "sfcat"
    assert events.tags == {"connections.snowflake.sf.analytics.public"}
    assert sorted(s.path for s in registry.retired) == [
        "hc.hold.hr.people",  # inactive by default
        "hc.hold.sales.old",  # missing
        "hc.hold.sales.v",  # disabled on the node
    ]


def test_a_policy_on_the_connection_tag_reaches_the_store_sources(store):
    build(store)
    registry = read_registry(store)
    policy = Policy(
        "sales readers", Access.READ, anyone=True, tags=frozenset({"connections.trino.hc"})
    )
    snapshot = PolicySnapshot.compile(
        "r1", registry.sources, [policy], {}, retired=registry.retired
    )
    assert snapshot.targets["sales readers"] == {"hc.hold.sales.orders"}
    assert ("hold", "sales", "orders") in snapshot.registry.tables


def row(id, parent, kind, name, active=None, state=RemoteState.PRESENT):
    return TreeRow(id, parent, kind, name, active, state)


# the table's status given (connection, database, schema, table) overrides and states
CASES = [
    ((None, None, None, None), (), False),
    ((True, None, None, None), (), True),
    ((True, False, None, None), (), False),
    ((True, False, None, True), (), True),
    ((True, None, None, None), (3,), False),  # missing table
    ((True, None, None, True), (1,), False),  # missing database: the subtree is disabled
    ((True, None, None, None), ("unknown",), True),  # an unknown schema keeps its tables
]


def test_compile_connection_decision_table():
    for overrides, missing, expected in CASES:
        states = [RemoteState.PRESENT] * 4
        for index in missing:
            if index == "unknown":
                states[2] = RemoteState.UNKNOWN
            else:
                states[index] = RemoteState.MISSING
        rows = [
            row(1, None, Kind.CONNECTION, "hc", overrides[0], states[0]),
            row(2, 1, Kind.DATABASE, "db", overrides[1], states[1]),
            row(3, 2, Kind.SCHEMA, "s", overrides[2], states[2]),
            row(4, 3, Kind.TABLE, "t", overrides[3], states[3]),
        ]
        active, retired = compile_connection("hc", Technology.TRINO, {}, reversed(rows), {})
        assert bool(active) is expected, (overrides, missing)
        assert bool(retired) is not expected


def test_object_types():
    assert object_type("BASE TABLE") is ObjectType.TABLE
    assert object_type("MANAGED") is ObjectType.TABLE
    assert object_type("EXTERNAL") is ObjectType.EXTERNAL_TABLE
    assert object_type("materialized view") is ObjectType.MATERIALIZED_VIEW
    assert object_type(None) is ObjectType.TABLE
    assert object_type("SOMETHING NEW") is ObjectType.TABLE


def test_yaml_declarations_win_over_the_store_for_the_same_connection(store):
    build(store)
    registry = read_registry(store)
    legacy = DataSource("HC", Technology.TRINO, "hold", "sales", "orders", trino_catalog="hold")
    merged = merge_registries([legacy], [], registry)
    assert merged.shadowed == {"hc"}
    assert [s.path for s in merged.sources] == [
        "HC.hold.sales.orders",
        "sf.ANALYTICS.PUBLIC.EVENTS",
    ]


overrides = st.sampled_from([None, True, False])
states = st.sampled_from(list(RemoteState))


@given(st.lists(st.tuples(overrides, states), min_size=4, max_size=4))
def test_the_compiler_agrees_with_the_inheritance_rule(levels):
    """One pass top-down (the compiler) gives what the chain rule gives node by node."""
    paths = P("hc", "db", "s", "t").ancestors()
    nodes = [
        Node(path, active, None, state) for path, (active, state) in zip(paths, levels, strict=True)
    ]
    rows = [
        row(i + 1, i or None, kind, path.name, active, state)
        for i, (kind, path, (active, state)) in enumerate(zip(Kind, paths, levels, strict=True))
    ]
    active, _ = compile_connection("hc", Technology.TRINO, {}, rows, {})
    assert bool(active) is effective_is_active(nodes).value
