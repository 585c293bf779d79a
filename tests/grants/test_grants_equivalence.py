"""One decision function feeds Trino and the native grants.

Over generated registries, policies, users, masks, row filters and accessGrantMappings: a user
may SELECT a table through Trino, with no mask or row filter applying to them there, exactly when
the plan gives that user the native read privilege on the same object, except where the seed
table says the platform gets nothing (a write-only policy on a Databricks foreign table). The
same holds for writes on base tables. Where a mask or a filter applies to the user, the platform
enforcing none of them natively, the plan grants nothing on the object and says why: a user never
reads natively more than Trino shows them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.core import Access, AccessGrantMapping, Identity, Request, Settings, TableRef, decide
from pdp.core.datapolicy import parse_template, row_filters
from pdp.core.model import MaskKind, View
from pdp.grants.databricks import DatabricksDialect
from pdp.grants.desired import desired_state
from pdp.grants.dialect import Dialect
from pdp.grants.postgres import PostgresDialect, column_grants
from pdp.grants.snowflake import SnowflakeDialect
from pdp.policy import (
    DataSource,
    DirectoryUser,
    ObjectType,
    Policy,
    PolicySnapshot,
    PolicyStatus,
    Technology,
)
from pdp.policy.model import Audience, MaskingPolicy, RowFilterPolicy, Targets

T = ObjectType
NATIVE_COLUMNS = ("id", "amount", "email")  # every PostgreSQL table has these natively
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
    "pg": (
        Technology.POSTGRESQL,
        "shop",
        "postgresql",
        [T.TABLE, T.VIEW, T.MATERIALIZED_VIEW, T.FOREIGN_TABLE],
        PostgresDialect(),
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
# the same platforms enforcing masks and row filters natively (a policySchema on the target)
NATIVE = {
    "sf": SnowflakeDialect(policy_schema=("GOV", "P")),
    "uc": DatabricksDialect(policy_schema=("gov", "p")),
}
USERS = ["ann", "ben", "cy", "dee"]
PREDICATES = [  # PostgreSQL evaluates the first three as Trino; the last two it does not
    "owner = @user",
    "region IN @attribute(region) OR amount > 100",
    "region = 'emea'",
    "team IN @groups",
    "lower(region) = 'emea'",
]
GROUPS = ["analysts", "eng"]
TRINO_GROUPS = [*GROUPS, "ops"]  # Trino's group provider may know groups the directory does not
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
            tagged = draw(st.booleans())  # the registry knows one column of it, tagged pii
            columns = (("email", frozenset({"pii"})),) if tagged else ()
            sources.append(
                DataSource(
                    connection, tech, database, schema, name, kind, frozenset(), catalog, columns
                )
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
        u: DirectoryUser(
            u,
            frozenset(draw(st.sets(st.sampled_from(GROUPS), max_size=2))),
            {"region": frozenset(draw(st.sets(st.sampled_from(["emea", "amer"]), max_size=1)))},
        )
        for u in USERS
    }
    mapping = draw(st.sampled_from(MAPPINGS))
    masks = [
        MaskingPolicy(
            f"m{index}",
            draw(st.sampled_from(list(MaskKind))),
            _targets(draw, paths),
            columns=draw(st.sampled_from([frozenset({"amount"}), frozenset()])),
            column_tags=draw(st.sampled_from([frozenset({"pii"}), frozenset()])),
            audience=_audience(draw),
            status=draw(st.sampled_from(list(PolicyStatus))),
        )
        for index in range(draw(st.integers(0, 3)))
    ]
    filters = [
        RowFilterPolicy(
            f"f{index}",
            _targets(draw, paths),
            (where := draw(st.sampled_from(PREDICATES))),
            parse_template(where),
            _audience(draw),
            draw(st.sampled_from(list(PolicyStatus))),
        )
        for index in range(draw(st.integers(0, 3)))
    ]
    return PolicySnapshot.compile(
        "r", sources, policies, directory, mapping, masking=masks, row_filters=filters
    )


def _targets(draw: st.DrawFn, paths: list[str]) -> Targets:
    chosen = draw(st.sets(st.sampled_from(paths), max_size=4))
    return Targets(data_sources=frozenset(chosen), everything=not chosen and draw(st.booleans()))


def _audience(draw: st.DrawFn) -> Audience:
    return Audience(
        users=frozenset(draw(st.sets(st.sampled_from(USERS), max_size=2))),
        groups=frozenset(draw(st.sets(st.sampled_from(TRINO_GROUPS), max_size=1))),
        exclude=draw(st.booleans()),
    )


def _trino_masks(view: View, table: TableRef) -> set[str]:
    """The masks Trino applies to some column of `table` for the view's user."""
    return {
        m.policy for m in view.registry.masks.get(table.key, ()) if m.policy in view.mask_policies
    }


def _trino_masked(view: View, table: TableRef, column: str, tags: frozenset[str]) -> bool:
    """Whether Trino masks `column` (tagged `tags`) of `table` for the view's user."""
    return any(
        m.policy in view.mask_policies and (column in m.columns or not m.tags.isdisjoint(tags))
        for m in view.registry.masks.get(table.key, ())
    )


def _trino_filters(view: View, user: str, table: TableRef) -> set[tuple[str, str]]:
    return {(f.policy, f.expression) for f in row_filters(view, Identity(user), table.key)}


@settings(max_examples=150, deadline=None)
@given(worlds(), st.data())
def test_trino_and_native_grants_agree(snapshot: PolicySnapshot, data: st.DataObject) -> None:
    for connection, (_, _, _, _, dialect, write_privilege, writable) in PLATFORMS.items():
        _agree(snapshot, data, connection, dialect, write_privilege, writable)


@settings(max_examples=80, deadline=None)
@given(worlds(), st.data())
def test_trino_and_native_data_policies_agree(
    snapshot: PolicySnapshot, data: st.DataObject
) -> None:
    for connection, dialect in NATIVE.items():
        _, _, _, _, _, write_privilege, writable = PLATFORMS[connection]
        _agree(snapshot, data, connection, dialect, write_privilege, writable)


class _TrinoAdds:
    """In place of `st.data()`: the groups Trino's group provider adds, always the same."""

    def __init__(self, groups: frozenset[str]) -> None:
        self.groups = groups

    def draw(self, _strategy: object) -> frozenset[str]:
        return self.groups


@pytest.mark.parametrize("connection", sorted(NATIVE))
@pytest.mark.parametrize(
    "where", ["team IN @groups", "owner = @user", "region IN @attribute(region)"]
)
def test_a_filter_naming_the_user_is_native_only_where_grant_sync_sees_its_values(
    connection: str, where: str
) -> None:
    # Trino adds the groups of its group provider to @groups: were the filter native, the
    # user would read fewer rows natively than Trino shows, or more (`NOT IN @groups`)
    technology, database, catalog, *_ = PLATFORMS[connection]
    source = DataSource(connection, technology, database, "s1", "a", T.TABLE, trino_catalog=catalog)
    path = source.path.casefold()
    reads = Policy("p", Access.READ, users=frozenset({"ann"}), data_sources=frozenset({path}))
    only = RowFilterPolicy(
        "f", Targets(data_sources=frozenset({path})), where, parse_template(where)
    )
    ann = DirectoryUser("ann", frozenset({"g1"}), {"region": frozenset({"emea"})})
    snapshot = PolicySnapshot.compile("r", [source], [reads], {"ann": ann}, row_filters=[only])
    _, _, _, _, _, write_privilege, writable = PLATFORMS[connection]
    dialect = NATIVE[connection]
    _agree(snapshot, _TrinoAdds(frozenset({"g2"})), connection, dialect, write_privilege, writable)
    withheld = desired_state(snapshot, dialect, [connection]).withheld
    assert bool(withheld) == ("@groups" in where), withheld


def _agree(
    snapshot: PolicySnapshot,
    data: st.DataObject | _TrinoAdds,
    connection: str,
    dialect: Dialect,
    write_privilege: str,
    writable: set[ObjectType],
) -> None:
    """What one dialect's desired state grants each user is never more than Trino shows them
    (masks and filters it enforces natively count as Trino's), and nothing less without a
    reason."""
    trino = Settings(mapping=snapshot.mapping)
    native_masks = getattr(dialect, "policy_schema", None) is not None
    desired = desired_state(snapshot, dialect, [connection])
    if isinstance(dialect, PostgresDialect):  # masks: SELECT on the unmasked columns
        desired = column_grants(desired, dict.fromkeys(desired.enforced, NATIVE_COLUMNS))
    for user in USERS:
        view = snapshot.view(trino, Identity(user))
        # Trino may add groups from its group provider, which grant sync never sees
        extra = frozenset(data.draw(st.sets(st.sampled_from(TRINO_GROUPS), max_size=2)))
        with_groups = snapshot.view(trino, Identity(user, extra))
        principal = dialect.principal(user)
        held = desired.grants.get(principal, {})
        grants = snapshot.grants(snapshot.subject(user))
        for path, source in snapshot.sources.items():
            if source.connection != connection:
                continue
            table = TableRef(source.trino_catalog or "", source.schema, source.name)
            securable = dialect.securable(source)
            native = held.get(securable, frozenset())
            columns = {s.name[3] for s in held if s.name[:3] == securable.name[:3] != s.name}
            enforced = {
                (a.policy.name, a.predicate)
                for a in desired.enforced.get(securable, {}).get(principal, ())
            }
            said = f"{user} on {source.path}:"
            withheld = [w for w in desired.withheld if w.startswith(said)]

            # never more natively than Trino shows, whatever groups Trino adds
            for seen in (view, with_groups):
                identity = Identity(user, extra if seen is with_groups else frozenset())
                select = decide(seen, Request(identity, "SelectFromColumns", table))
                if "SELECT" in native:
                    assert select.allowed, (user, path)
                    masks = _trino_masks(seen, table)
                    if native_masks:
                        assert masks <= {name for name, _ in enforced}, (user, path)
                    else:
                        assert not masks, (user, path)
                    assert _trino_filters(seen, user, table) <= enforced, (user, path)
                if columns:
                    assert select.allowed and "SELECT" not in native, (user, path)
                    assert _trino_filters(seen, user, table) <= enforced, (user, path)
                    tags = dict(source.columns)
                    for name in columns:
                        masked = _trino_masked(seen, table, name, tags.get(name, frozenset()))
                        assert not masked, (user, path, name)
                if write_privilege in native:
                    insert = decide(seen, Request(identity, "InsertIntoTable", table))
                    assert insert.allowed, (user, path)

            # and nothing less without saying why (bar the seed's foreign table exception)
            select = decide(view, Request(Identity(user), "SelectFromColumns", table))
            write_only = {g.access for g in grants.get(path, ())} == {Access.WRITE}
            nothing = connection == "uc" and source.type is T.FOREIGN_TABLE and write_only
            if nothing:
                assert select.allowed and not native  # the seed: the platform gets nothing
            elif select.allowed:
                readable = "SELECT" in native or bool(columns)
                assert readable != bool(withheld), (user, path, desired.withheld)
                if not (_trino_masks(view, table) or _trino_filters(view, user, table)):
                    # no data policy through Trino: withheld only for a group-only policy
                    assert not withheld or any(
                        p.name in w
                        for p in (*snapshot.masking, *snapshot.row_filters)
                        if not p.audience.exclude and p.audience.groups
                        for w in withheld
                    ), (user, path, withheld)
            else:
                assert not native and not withheld

            if source.type in writable:
                insert = decide(view, Request(Identity(user), "InsertIntoTable", table))
                readable = "SELECT" in native or bool(columns)
                trino_writes = insert.allowed and readable
                filtered = any(predicate is not None for _, predicate in enforced)
                if trino_writes and native_masks and filtered and write_privilege not in native:
                    # Unity Catalog's MODIFY carries TRUNCATE, which row filters may not
                    # bind: a natively filtered user writes through Trino only
                    assert isinstance(dialect, DatabricksDialect), (user, path)
                else:
                    assert trino_writes == (write_privilege in native), (user, path)
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
