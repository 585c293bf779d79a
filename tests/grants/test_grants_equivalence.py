"""One decision function feeds Trino and the native grants.

Over generated registries, policies, users and accessGrantMappings: a user may SELECT a table
through Trino exactly when the plan gives that user the native read privilege on the same object,
except where the seed table says the platform gets nothing (a write-only policy on a Databricks
foreign table). The same holds for writes on base tables."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.core import Access, AccessGrantMapping, Identity, Request, Settings, TableRef, decide
from pdp.grants.databricks import DatabricksDialect
from pdp.grants.desired import desired_state
from pdp.grants.snowflake import SnowflakeDialect
from pdp.policy import DataSource, DirectoryUser, ObjectType, Policy, PolicySnapshot, Technology

T = ObjectType
PLATFORMS = {
    # connection: (technology, database, Trino catalog, kinds, dialect, write privilege, writable)
    "sf": (
        Technology.SNOWFLAKE,
        "sales",
        "snow",
        [T.TABLE, T.VIEW, T.MATERIALIZED_VIEW, T.EXTERNAL_TABLE, T.EVENT_TABLE, T.DYNAMIC_TABLE],
        SnowflakeDialect(),
        "INSERT",
        {T.TABLE},
    ),
    "uc": (
        Technology.DATABRICKS,
        "main",
        "lake",
        [
            T.TABLE,
            T.EXTERNAL_TABLE,
            T.VIEW,
            T.MATERIALIZED_VIEW,
            T.STREAMING_TABLE,
            T.FOREIGN_TABLE,
        ],
        DatabricksDialect(),
        "MODIFY",
        {T.TABLE, T.EXTERNAL_TABLE},
    ),
}
USERS = ["ann", "ben", "cy", "dee"]
GROUPS = ["analysts", "eng"]
MAPPINGS = [
    AccessGrantMapping(),
    AccessGrantMapping(write=frozenset({Access.READ})),
    AccessGrantMapping(write=frozenset({Access.READ, Access.WRITE, Access.OWN})),
    AccessGrantMapping(read=frozenset({Access.READ, Access.WRITE})),
]


@st.composite
def worlds(draw: st.DrawFn) -> PolicySnapshot:
    sources = []
    for connection, (tech, database, catalog, kinds, *_rest) in PLATFORMS.items():
        names = draw(st.sets(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=4))
        for name in sorted(names):
            schema = draw(st.sampled_from(["s1", "s2"]))
            kind = draw(st.sampled_from(kinds))
            sources.append(
                DataSource(connection, tech, database, schema, name, kind, frozenset(), catalog)
            )
    paths = [s.path.casefold() for s in sources]
    policies = []
    for index in range(draw(st.integers(0, 6))):
        policies.append(
            Policy(
                f"p{index}",
                draw(st.sampled_from([Access.READ, Access.WRITE])),
                users=frozenset(draw(st.sets(st.sampled_from(USERS), max_size=2))),
                groups=frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=1))),
                data_sources=frozenset(draw(st.sets(st.sampled_from(paths), max_size=4))),
                schemas=frozenset(
                    draw(st.sets(st.sampled_from(["sf.sales.s1", "uc.main.s2"]), max_size=1))
                ),
            )
        )
    directory = {
        u: DirectoryUser(u, frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=2))))
        for u in USERS
    }
    mapping = draw(st.sampled_from(MAPPINGS))
    return PolicySnapshot.compile("r", sources, policies, directory, mapping)


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_trino_and_native_grants_agree(snapshot: PolicySnapshot) -> None:
    trino = Settings(mapping=snapshot.mapping)
    for connection, (_, _, _, _, dialect, write_privilege, writable) in PLATFORMS.items():
        desired = desired_state(snapshot, dialect, [connection])
        for user in USERS:
            view = snapshot.view(trino, Identity(user))
            held = desired.grants.get(dialect.principal(user), {})
            grants = snapshot.grants(snapshot.subject(user))
            for path, source in snapshot.sources.items():
                if source.connection != connection:
                    continue
                table = TableRef(source.trino_catalog or "", source.schema, source.name)
                native = held.get(dialect.securable(source), frozenset())

                select = decide(view, Request(Identity(user), "SelectFromColumns", table))
                write_only = {g.access for g in grants.get(path, ())} == {Access.WRITE}
                if source.type is T.FOREIGN_TABLE and write_only:
                    assert select.allowed and not native  # the seed: the platform gets nothing
                else:
                    assert select.allowed == ("SELECT" in native), (user, path)

                if source.type in writable:
                    insert = decide(view, Request(Identity(user), "InsertIntoTable", table))
                    assert insert.allowed == (write_privilege in native), (user, path)
                else:
                    assert write_privilege not in native


def test_parents_are_granted_with_every_object() -> None:
    source = DataSource("sf", Technology.SNOWFLAKE, "sales", "s1", "t", T.TABLE)
    policy = Policy(
        "p", Access.READ, users=frozenset({"ann"}), data_sources=frozenset({"sf.sales.s1.t"})
    )
    snapshot = PolicySnapshot.compile("r", [source], [policy], {})
    held = desired_state(snapshot, SnowflakeDialect(), ["sf"]).grants["PDP_USER_ANN"]
    assert {(s.family, s.name, p) for s, ps in held.items() for p in ps} == {
        ("DATABASE", ("SALES",), "USAGE"),
        ("SCHEMA", ("SALES", "S1"), "USAGE"),
        ("TABLE", ("SALES", "S1", "T"), "SELECT"),
    }
