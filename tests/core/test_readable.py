"""pdp.core.readable answers READ on a table exactly as `decide` does for FilterTables (and
what it answers of single checks, `allowed_without_reason`, as `decide` does): over
generated worlds (tests/sidecar/delta_world.py and its edits), cluster settings, incomplete
registries, grants held as policies or as a plain mapping, and table names as Trino may send
them (case variants, missing tables, unknown and system catalogs, metadata schemas)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.core import decide
from pdp.core.model import (
    Access,
    AccessGrantMapping,
    CatalogRef,
    Identity,
    Request,
    SchemaRef,
    Settings,
    TableRef,
    View,
)
from pdp.core.readable import _HOW, Readable, allowed_without_reason, readable
from pdp.policy import PolicySnapshot
from tests.sidecar.delta_world import IDENTITIES, NAMES, SCHEMAS, World, edit
from tests.sidecar.test_revision_delta import CHANGES

ACCESS = st.frozensets(st.sampled_from(list(Access)))
# names as sent: the registered ones in any letter case, others, the metadata schemas, and
# letters whose lower case and case fold differ (ß, ﬁ)
CATALOGS = st.sampled_from(["hive", "HIVE", "Hive", "other", "system", "SYSTEM", "hiße"])
SCHEMA_NAMES = st.sampled_from(
    [*SCHEMAS, "S0", "s9", "information_schema", "INFORMATION_SCHEMA", "jdbc", "metadata", "ß"]
)
TABLE_NAMES = st.sampled_from([*NAMES, "T0", "t9", "tables", "ﬁle", "FILE"])
ADMINS = st.sampled_from(["(?!)", "u0", "u.*", "zed"])


@st.composite
def views(draw: st.DrawFn) -> tuple[View, Identity]:
    world = World()
    for change in draw(st.lists(CHANGES, max_size=6)):
        edit(world, change)
    snapshot = world.snapshot("r1")
    identity = draw(st.sampled_from(IDENTITIES))
    cluster = Settings(
        datasource_operations=draw(ACCESS),
        non_datasource_operations=draw(ACCESS),
        admin=re.compile(draw(ADMINS)),
    )
    mapping = draw(
        st.one_of(st.just(snapshot.mapping), st.builds(AccessGrantMapping, ACCESS, ACCESS))
    )
    view = snapshot.view(dataclasses.replace(cluster, mapping=mapping), identity)
    if not draw(st.booleans()):  # the store unknown: unregistered tables may be its own
        view = dataclasses.replace(
            view, registry=dataclasses.replace(view.registry, complete=False)
        )
    if draw(st.booleans()):  # grants as a plain mapping (entitlements sent per table)
        view = dataclasses.replace(view, grants=dict(view.grants.items()))
    return view, identity


@settings(max_examples=300, deadline=None)
@given(views(), st.lists(st.tuples(CATALOGS, SCHEMA_NAMES, TABLE_NAMES), min_size=1))
def test_readable_equals_decide_for_every_table(held, tables):
    view, identity = held
    reads = readable(view, identity.user)
    for catalog, schema, table in tables:
        request = Request(identity, "FilterTables", TableRef(catalog, schema, table))
        expected = decide(view, request).allowed
        assert reads.allowed(catalog, schema, table) == expected, (request, view.settings)


def test_the_answer_is_derived_once_per_view_and_never_copied_to_another():
    world = World()
    snapshot = world.snapshot("r1")
    identity = IDENTITIES[0]
    view = snapshot.view(snapshot_settings(snapshot), identity)
    first = readable(view, identity.user)
    assert readable(view, identity.user) is first
    assert isinstance(first, Readable)
    # a view made from it (dataclasses.replace, as a revision's patch does) starts empty
    moved = dataclasses.replace(view, registry=dataclasses.replace(view.registry, complete=False))
    assert moved.derived == {}
    assert readable(moved, identity.user) is not first


def snapshot_settings(snapshot: PolicySnapshot) -> Settings:
    return Settings(mapping=snapshot.mapping)


# Every operation set lookups answer, a few they do not, and one this version does not know;
# the resource named as a table, a schema, a catalog, or not at all.
OPERATIONS_ASKED = st.sampled_from(
    [
        *sorted(_HOW),
        "CreateTable",
        "DropSchema",
        "InsertIntoTable",
        "ExecuteFunction",
        "ImpersonateUser",
        "SomethingNewer",
    ]
)
NAMES_ASKED = st.one_of(
    st.tuples(CATALOGS, SCHEMA_NAMES, TABLE_NAMES),
    st.tuples(CATALOGS, SCHEMA_NAMES),
    st.tuples(CATALOGS),
    st.just(()),
)
RESOURCES: dict[int, Any] = {0: lambda: None, 1: CatalogRef, 2: SchemaRef, 3: TableRef}


@settings(max_examples=300, deadline=None)
@given(views(), st.booleans(), st.lists(st.tuples(OPERATIONS_ASKED, NAMES_ASKED), min_size=1))
def test_an_answer_without_reason_is_the_decisions_for_every_request_it_gives(
    held, data_policy_uris, asked
):
    view, identity = held
    view = dataclasses.replace(
        view, settings=dataclasses.replace(view.settings, data_policy_uris=data_policy_uris)
    )
    answered = 0
    for operation, names in asked:
        request = Request(identity, operation, RESOURCES[len(names)](*names))
        quick = allowed_without_reason(view, identity.user, operation, names)
        if quick is not None:
            answered += 1
            assert quick == decide(view, request).allowed, (request, view.settings)
        if _HOW.get(operation) == "everyone":
            # no view needed: the same answer without one
            assert allowed_without_reason(None, identity.user, operation, names) is True
        elif _HOW.get(operation) is None:
            assert quick is None  # decide answers it, with its reason


def test_what_needs_data_policies_or_a_view_is_left_to_decide():
    snapshot = World().snapshot("r1")
    identity = IDENTITIES[0]
    view = snapshot.view(snapshot_settings(snapshot), identity)
    table = ("hive", SCHEMAS[0], NAMES[0])
    asked = allowed_without_reason(view, identity.user, "SelectFromColumns", table)
    assert asked is not None  # the cluster's Trino asks for data policies
    unasked = dataclasses.replace(
        view, settings=dataclasses.replace(view.settings, data_policy_uris=False)
    )
    assert allowed_without_reason(unasked, identity.user, "SelectFromColumns", table) is None
    assert allowed_without_reason(None, identity.user, "SelectFromColumns", table) is None
    # a resource of another kind than the operation's is for decide (a malformed request)
    assert allowed_without_reason(view, identity.user, "SelectFromColumns", ("hive",)) is None
    assert allowed_without_reason(view, identity.user, "AccessCatalog", table) is None
