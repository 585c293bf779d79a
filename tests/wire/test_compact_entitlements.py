"""Compact entitlements decide exactly as the per-table grants they replace.

A user's view is built three ways: from a plain dict of per-table grants (the reference, what
`View.grants` held before: the path-level grants of `PolicySnapshot.grants` by Trino table), as
the PDP builds it (`PolicySnapshot.view`), and as a sidecar builds it from the wire (the registry
and the user's entitlements encoded and decoded, then the saved state's encoding of that view
decoded once more), and from the per-table form that PDPs and saved states of earlier versions
send. Every decision on every table, schema and catalog must be the same, reasons
and policies included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.core import decide
from pdp.core.model import (
    Access,
    AccessGrantMapping,
    CatalogRef,
    Identity,
    PolicyGrant,
    Request,
    SchemaRef,
    Settings,
    TableKey,
    TableRef,
    View,
)
from pdp.policy import DataSource, Policy, PolicySnapshot, PolicyStatus, Subject, Technology
from pdp.wire import proto

CONNECTION = "wh"
TAGS = ("PII", "PII.Email", "Finance", "Public")
TABLE_OPERATIONS = ("SelectFromColumns", "InsertIntoTable", "DropTable", "FilterColumns")
CONTAINER_OPERATIONS = ("ShowTables", "DropSchema")
MAPPINGS = (
    AccessGrantMapping(),
    AccessGrantMapping(read=frozenset({Access.READ}), write=frozenset(Access)),
)


def source(database: str, schema: str, name: str, tags: frozenset[str] = frozenset()) -> DataSource:
    return DataSource(
        CONNECTION, Technology.SNOWFLAKE, database, schema, name, tags=tags, trino_catalog=database
    )


def reference(
    snapshot: PolicySnapshot, subject: Subject
) -> dict[TableKey, tuple[PolicyGrant, ...]]:
    """The per-table grants as the PDP computed and sent them before the compact form."""
    grants: dict[TableKey, tuple[PolicyGrant, ...]] = {}
    for path, granted in snapshot.grants(subject).items():
        key = snapshot.trino_paths.get(path)
        if key is not None:
            grants[key] = grants.get(key, ()) + granted
    return grants


def views(snapshot: PolicySnapshot, subject: Subject, cluster: Settings) -> list[View]:
    identity = Identity(subject.name, subject.groups)
    masks, filters = snapshot.data_policies(subject)
    owned = snapshot.owned(subject)
    plain = View(cluster, snapshot.registry, reference(snapshot, subject), masks, filters, owned)
    pdp = snapshot.view(cluster, identity)
    registry, _ = proto.registry_from_pb(
        proto.registry_to_pb(snapshot.revision, snapshot.registry, snapshot.mapping)
    )
    message = proto.entitlements_to_pb(
        snapshot.revision, snapshot.trino_positions(subject), masks, filters, owned
    )
    wire = proto.view_from_pb(pb_copy(message), cluster, registry)
    saved = proto.view_from_pb(pb_copy(proto.view_to_pb("r", wire)), cluster, registry)
    # from a PDP (or a saved state) before compact entitlements: a message per table
    old = proto.entitlements_to_pb(snapshot.revision, (), masks, filters, owned)
    old.tables.extend(proto.table_grants_to_pb(pdp.grants))
    per_table = proto.view_from_pb(pb_copy(old), cluster, registry)
    return [plain, pdp, wire, saved, per_table]


def pb_copy(message):  # what crosses the wire: bytes, parsed afresh
    copy = type(message)()
    copy.ParseFromString(message.SerializeToString())
    return copy


def all_decisions(view: View, user: str) -> list[object]:
    identity = Identity(user)
    tables = sorted(view.registry.tables)
    asks: list[Request] = [
        Request(identity, operation, TableRef(*key))
        for key in tables
        for operation in TABLE_OPERATIONS
    ]
    for catalog, schema in sorted({key[:2] for key in tables}):
        asks.append(Request(identity, "AccessCatalog", CatalogRef(catalog)))
        asks += [Request(identity, op, SchemaRef(catalog, schema)) for op in CONTAINER_OPERATIONS]
    asks.append(Request(identity, "SelectFromColumns", TableRef("db0", "s0", "unlisted")))
    return [decide(view, ask) for ask in asks]


def assert_same_decisions(
    snapshot: PolicySnapshot, subject: Subject, mappings: tuple[AccessGrantMapping, ...] = MAPPINGS
) -> None:
    for mapping in mappings:
        cluster = Settings(mapping=mapping)
        plain, *compact = views(snapshot, subject, cluster)
        expected = all_decisions(plain, subject.name)
        for view in compact:
            assert all_decisions(view, subject.name) == expected


# --- generated worlds -----------------------------------------------------------------------

NAMES = st.sampled_from(["ann", "ben"])
GROUPS = st.frozensets(st.sampled_from(["g1", "g2", "g3"]), max_size=2)
PATHS = [(f"db{d}", f"s{s}", f"t{t}") for d in range(2) for s in range(2) for t in range(3)]

worlds = st.tuples(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.frozensets(st.sampled_from(TAGS), max_size=2)),
        unique_by=lambda item: item[0],
        max_size=10,
    ),
    st.lists(
        st.builds(
            lambda n, access, users, groups, staged, tables, schemas, databases, tags: Policy(
                name=f"p{n}",
                access=access,
                users=users,
                groups=groups,
                status=PolicyStatus.STAGED if staged else PolicyStatus.ACTIVE,
                data_sources=frozenset(f"{CONNECTION}.{d}.{s}.{t}" for d, s, t in tables),
                schemas=frozenset(f"{CONNECTION}.{d}.{s}" for d, s, _ in schemas),
                databases=frozenset(f"{CONNECTION}.{d}" for d, _, _ in databases),
                tags=tags,
            ),
            st.integers(0, 30),
            st.sampled_from([Access.READ, Access.WRITE]),
            st.frozensets(NAMES, max_size=1),
            GROUPS,
            st.booleans(),
            st.frozensets(st.sampled_from(PATHS), max_size=3),
            st.frozensets(st.sampled_from(PATHS), max_size=2),
            st.frozensets(st.sampled_from(PATHS), max_size=1),
            st.frozensets(st.sampled_from(TAGS), max_size=1),
        ),
        max_size=8,
        unique_by=lambda p: p.name,
    ),
)


@settings(max_examples=200, deadline=None)
@given(worlds, NAMES, GROUPS)
def test_generated_views_decide_alike_before_and_after_encoding(world, name, groups):
    tables, policies = world
    sources = [source(*path, tags=tags) for path, tags in tables]
    snapshot = PolicySnapshot.compile("r", sources, policies, {})
    assert_same_decisions(snapshot, Subject(name, groups, {}))


# --- a user who sees 5,000 tables ----------------------------------------------------------


def large_world() -> PolicySnapshot:
    """5,000 tables (2 catalogs x 25 schemas x 100) plus 5,000 the user is never granted;
    the user's policies grant whole schemas, a database, tags and single tables, some READ
    and some WRITE, overlapping."""
    sources = [
        source(f"db{d}", f"s{s}", f"t{t}", frozenset({TAGS[t % len(TAGS)]}))
        for d in range(4)
        for s in range(25)
        for t in range(100)
    ]
    policies = [
        Policy(
            "whole-db0",
            Access.READ,
            groups=frozenset({"analysts"}),
            databases=frozenset({"wh.db0"}),
        ),
        Policy(
            "schemas",
            Access.WRITE,
            groups=frozenset({"analysts"}),
            schemas=frozenset(f"wh.db1.s{s}" for s in range(0, 25, 2)),
        ),
        Policy("pii", Access.READ, users=frozenset({"ann"}), tags=frozenset({"PII"})),
        Policy(
            "singles",
            Access.WRITE,
            users=frozenset({"ann"}),
            data_sources=frozenset(f"wh.db1.s{s}.t{t}" for s in range(1, 25, 2) for t in (3, 7)),
        ),
        Policy("others", Access.READ, groups=frozenset({"ops"}), databases=frozenset({"wh.db2"})),
    ]
    return PolicySnapshot.compile("r", sources, policies, {})


def test_a_5000_table_view_round_trips_exactly():
    snapshot = large_world()
    ann = Subject("ann", frozenset({"analysts"}), {})
    seen = reference(snapshot, ann)
    assert 5_000 <= len(seen) < 7_000  # the user sees some 5,000 of the 10,000 tables
    assert_same_decisions(snapshot, ann, MAPPINGS[:1])


def test_a_policy_on_whole_schemas_is_sent_as_schemas():
    snapshot = large_world()
    message = proto.registry_to_pb("r", snapshot.registry, snapshot.mapping)
    by_name = {p.policy: p for p in message.policies}
    assert len(by_name["whole-db0"].schemas) == 25 and not by_name["whole-db0"].tables
    assert len(by_name["schemas"].schemas) == 13 and not by_name["schemas"].tables
    assert not by_name["singles"].schemas and len(by_name["singles"].tables) == 24
