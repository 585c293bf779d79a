"""The built-in New Column Added policy, as decision tables: staged by default; once active a
column tagged `New` is NULL for everyone but the data source's owners (Data Owner on the table
or above, to a user or one of their groups); set from the policy files' `builtins:` section;
carried to the sidecar (registry and entitlements) unchanged."""

from __future__ import annotations

import re

import pytest

from devstack.configs import make_tree
from pdp.config.errors import ConfigError
from pdp.core.datapolicy import column_mask
from pdp.core.model import Identity, Settings, table_key
from pdp.objects.paths import Kind
from pdp.objects.settings import RemoteState
from pdp.policy import DataSource, PolicySnapshot, PolicyStatus, Technology
from pdp.policy.builtin import NEW_COLUMN_ADDED, builtin_masks, new_column_added
from pdp.policy.model import MaskingPolicy, Targets
from pdp.store.registry import TreeRow, compile_connection
from pdp.wire import proto

T = table_key("pg", "shop", "orders")
OTHER = table_key("pg", "shop", "refunds")
SETTINGS = Settings(admin=re.compile("root"))


def source(table: str, owners=frozenset(), columns=(("note", frozenset({"new"})),)) -> DataSource:
    return DataSource(
        "pgc",
        Technology.POSTGRESQL,
        "pg",
        "shop",
        table,
        trino_catalog="pg",
        columns=columns,
        owners=owners,
    )


def snapshot(state: PolicyStatus, *extra: MaskingPolicy) -> PolicySnapshot:
    return PolicySnapshot.compile(
        "r1",
        [
            source("orders", frozenset({("user", "olga"), ("group", "shop-owners")})),
            source("refunds", frozenset({("user", "rita")})),
        ],
        [],
        {},
        masking=(*builtin_masks({NEW_COLUMN_ADDED.casefold(): state}), *extra),
    )


def mask_for(snap: PolicySnapshot, identity: Identity, column: str = "note", table=T):
    view = snap.view(SETTINGS, identity)
    return column_mask(view, identity, table, column, "varchar")


CASES = [
    # (policy state, who asks, column, table, expected expression or None)
    (PolicyStatus.STAGED, Identity("ann"), "note", T, None),
    (PolicyStatus.ACTIVE, Identity("ann"), "note", T, "CAST(NULL AS varchar)"),
    (PolicyStatus.ACTIVE, Identity("olga"), "note", T, None),  # owner, granted as a user
    (PolicyStatus.ACTIVE, Identity("gus", frozenset({"shop-owners"})), "note", T, None),
    (PolicyStatus.ACTIVE, Identity("rita"), "note", T, "CAST(NULL AS varchar)"),  # not hers
    (PolicyStatus.ACTIVE, Identity("rita"), "note", OTHER, None),  # hers
    (PolicyStatus.ACTIVE, Identity("root"), "note", T, None),  # admins are never masked
    (PolicyStatus.ACTIVE, Identity("ann"), "id", T, None),  # not tagged New
]


@pytest.mark.parametrize(("state", "identity", "column", "table", "expected"), CASES)
def test_new_column_added_masks_new_columns_for_everyone_but_the_owners(
    state, identity, column, table, expected
):
    mask = mask_for(snapshot(state), identity, column, table)
    assert (mask.expression if mask else None) == expected
    if mask is not None:
        assert mask.policy == NEW_COLUMN_ADDED
        assert "tagged new" in mask.reason  # what `pdp explain` prints


def test_the_built_in_policy_ships_staged():
    assert new_column_added().status is PolicyStatus.STAGED
    assert builtin_masks({})[0].status is PolicyStatus.STAGED
    assert snapshot(PolicyStatus.STAGED).new_tag_targeted is False


def test_an_active_policy_on_the_new_tag_turns_requests_on_whoever_wrote_it():
    mine = MaskingPolicy(
        "hide-new",
        new_column_added().kind,
        Targets(everything=True),
        column_tags=frozenset({"new"}),
    )
    assert snapshot(PolicyStatus.ACTIVE).new_tag_targeted is True
    assert snapshot(PolicyStatus.STAGED, mine).new_tag_targeted is True
    other = MaskingPolicy(
        "hide-pii", mine.kind, Targets(everything=True), column_tags=frozenset({"pii"})
    )
    assert snapshot(PolicyStatus.STAGED, other).new_tag_targeted is False


def test_a_data_owner_on_the_schema_owns_its_tables():
    rows = [
        TreeRow(1, None, Kind.CONNECTION, "pgc", True, RemoteState.PRESENT),
        TreeRow(2, 1, Kind.DATABASE, "pg", None, RemoteState.PRESENT),
        TreeRow(3, 2, Kind.SCHEMA, "shop", None, RemoteState.PRESENT),
        TreeRow(4, 3, Kind.TABLE, "orders", None, RemoteState.PRESENT),
    ]
    active, _ = compile_connection(
        "pgc",
        Technology.POSTGRESQL,
        {"trinoCatalogs": {"pg": "pg"}},
        rows,
        {},
        {4: {"note": frozenset({"new"})}},
        {3: frozenset({("user", "sam")})},
    )
    (orders,) = active
    assert orders.owners == {("user", "sam")}
    assert orders.columns == (("note", frozenset({"new"})),)
    snap = PolicySnapshot.compile(
        "r", active, [], {}, masking=builtin_masks({"new column added": PolicyStatus.ACTIVE})
    )
    assert mask_for(snap, Identity("sam")) is None
    assert mask_for(snap, Identity("ann")) is not None


def test_the_sidecar_gets_the_exemption_and_the_owned_tables():
    snap = snapshot(PolicyStatus.ACTIVE)
    registry, _ = proto.registry_from_pb(proto.registry_to_pb("r1", snap.registry, snap.mapping))
    assert [r.except_owners for r in registry.masks[T]] == [True]
    olga = snap.subject("olga")
    message = proto.entitlements_to_pb("r1", {}, frozenset(), {}, snap.owned(olga))
    assert proto.owned_from_pb(message) == {T}


# --- the policy files -------------------------------------------------------------------------


def masking(tmp_path, policies: str) -> dict[str, MaskingPolicy]:
    return {m.name: m for m in make_tree(tmp_path, policies=policies).snapshot().masking}


FILE_STATES = [
    ("", PolicyStatus.STAGED),
    ("builtins: {New Column Added: active}", PolicyStatus.ACTIVE),
    ("builtins: {new column added: Staged}", PolicyStatus.STAGED),
]


@pytest.mark.parametrize(("text", "expected"), FILE_STATES)
def test_the_policy_files_set_the_built_in_state(tmp_path, text, expected):
    assert masking(tmp_path, text)[NEW_COLUMN_ADDED].status is expected


FILE_ERRORS = [
    ("builtins: {Old Column Removed: active}", "no such built-in policy"),
    ("builtins: {New Column Added: on}", "expected active or staged"),
    ("builtins: [New Column Added]", "expected a mapping"),
    (
        "masks: [{name: New Column Added, columns: {tags: [New]}, mask: null}]",
        "is a built-in policy",
    ),
]


@pytest.mark.parametrize(("text", "message"), FILE_ERRORS)
def test_the_policy_files_refuse_what_the_built_in_cannot_be(tmp_path, text, message):
    with pytest.raises(ConfigError) as raised:
        masking(tmp_path, text)
    assert message in str(raised.value)


def test_validating_a_column_or_changing_its_owners_changes_the_revision():
    from pdp.control.snapshot import registry_digest
    from pdp.store import StoreRegistry

    tagged = source("orders", frozenset({("user", "olga")}))
    digests = {
        registry_digest(StoreRegistry(1, (s,)))
        for s in (
            tagged,
            source("orders", frozenset({("user", "olga")}), columns=()),  # validated
            source("orders", frozenset({("user", "rita")})),  # another owner
        )
    }
    assert len(digests) == 3
