"""revision_delta(old, new): which identities' views and which registry entries can differ from
one snapshot to the next, and when it gives up (drop everything)."""

from __future__ import annotations

import dataclasses

import pytest

from pdp.core.model import Access, AccessGrantMapping, PolicyGrant, Registry, Retargeted
from pdp.policy import DataSource, DirectoryUser, Policy, PolicySnapshot, Revisions, Technology
from pdp.policy import delta as delta_module
from pdp.policy.delta import LARGEST, RevisionDelta, revision_delta


def source(schema: str, name: str, tags: frozenset[str] = frozenset()) -> DataSource:
    return DataSource("c", Technology.TRINO, "hive", schema, name, tags=tags, trino_catalog="hive")


SOURCES = [source("sales", "orders"), source("sales", "refunds"), source("hr", "salaries")]
DIRECTORY = {
    "ann": DirectoryUser("ann", frozenset({"analysts"})),
    "ben": DirectoryUser("ben", frozenset({"hr"}), {"site": frozenset({"paris"})}),
    "cy": DirectoryUser("cy", frozenset({"analysts", "hr"})),
    "dee": DirectoryUser("dee"),
}
POLICIES = (
    Policy(
        "sales-readers",
        Access.READ,
        groups=frozenset({"analysts"}),
        schemas=frozenset({"c.hive.sales"}),
    ),
    Policy("hr-readers", Access.READ, groups=frozenset({"hr"}), schemas=frozenset({"c.hive.hr"})),
    Policy("paris", Access.READ, attributes={"site": frozenset({"paris"})}, tags=frozenset({"eu"})),
)


def snapshot(revision: str, sources=SOURCES, policies=POLICIES, directory=DIRECTORY, **kw):
    return PolicySnapshot.compile(revision, sources, policies, directory, **kw)


BEFORE = snapshot("r1")
READERS = PolicyGrant("sales-readers", Access.READ)


def delta_to(**changes) -> RevisionDelta:
    return revision_delta(BEFORE, snapshot("r2", **changes))


def replaced(name: str, **fields) -> tuple[Policy, ...]:
    return tuple(dataclasses.replace(p, **fields) if p.name == name else p for p in POLICIES)


def test_the_same_content_changes_nothing():
    assert revision_delta(BEFORE, snapshot("r2")) == RevisionDelta("r1")


def test_a_policy_edit_names_its_groups_and_their_members():
    delta = delta_to(policies=replaced("hr-readers", access=Access.WRITE))
    assert (delta.users, delta.groups, delta.tables) == ({"ben", "cy"}, {"hr"}, frozenset())


def test_moving_a_policy_to_another_group_names_both():
    delta = delta_to(policies=replaced("hr-readers", groups=frozenset({"analysts"})))
    assert delta.groups == {"hr", "analysts"} and delta.users == {"ann", "ben", "cy"}


def test_an_attribute_policy_names_those_holding_the_attribute():
    delta = delta_to(policies=replaced("paris", access=Access.WRITE))
    assert (delta.users, delta.groups) == ({"ben"}, frozenset())


def test_a_directory_change_names_the_user_only():
    directory = {**DIRECTORY, "dee": DirectoryUser("dee", frozenset({"hr"}))}
    delta = delta_to(directory=directory)
    assert (delta.users, delta.groups, delta.tables) == ({"dee"}, frozenset(), frozenset())


def test_a_table_added_names_it_and_retargets_the_policies_it_enters_naming_no_one():
    delta = delta_to(sources=[*SOURCES, source("sales", "invoices")])
    assert delta.tables == {("hive", "sales", "invoices")}
    # the analysts' views hold the policy by position: the policy table moves, not them
    assert (delta.users, delta.groups) == (frozenset(), frozenset())
    # the policy covering the schema targets one table more: it is retargeted, the schema
    # named whole (the sidecar reads its tables in its patched registry)
    assert delta.policies == (Retargeted(0, READERS, frozenset({("hive", "sales")})),)


def test_a_table_dropped_retargets_the_policies_covering_it_naming_nothing_more():
    delta = delta_to(sources=SOURCES[1:])
    assert delta.tables == {("hive", "sales", "orders")}
    assert (delta.users, delta.groups) == (frozenset(), frozenset())
    # relative: what the policy held less the delta's changed tables is what it targets now,
    # one table (refunds), which the sidecar checks it finds
    assert delta.policies == (Retargeted(0, READERS, relative=True, count=1),)


def test_a_hundred_tables_added_or_dropped_in_a_covered_schema_name_it_once_or_not_at_all():
    many = [source("sales", f"new{i}") for i in range(100)]
    bigger = snapshot("r2", sources=[*SOURCES, *many])
    added, dropped = revision_delta(BEFORE, bigger), revision_delta(bigger, BEFORE)
    assert len(added.tables) == len(dropped.tables) == 100
    assert added.policies == (Retargeted(0, READERS, frozenset({("hive", "sales")})),)
    assert dropped.policies == (Retargeted(0, READERS, relative=True, count=2),)


def test_a_policy_over_many_schemas_retargeted_by_one_table_names_the_schema_it_entered():
    # whole, the policy would name every schema it covers; relative, only where tables moved
    wide = replaced("sales-readers", schemas=frozenset({"c.hive.sales", "c.hive.hr"}))
    before = snapshot("r1", policies=wide)
    delta = revision_delta(
        before, snapshot("r2", sources=[*SOURCES, source("hr", "bonuses")], policies=wide)
    )
    assert delta.tables == {("hive", "hr", "bonuses")}
    hr = frozenset({("hive", "hr")})
    assert delta.policies[0] == Retargeted(0, READERS, hr, relative=True, count=4)


SALES_MORE = [*SOURCES, *(source("sales", f"t{i}") for i in range(5))]


def naming(*names: str) -> PolicySnapshot:
    """sales-readers naming these tables of sales (of seven) one by one, at revision r<n>."""
    sources = frozenset(f"c.hive.sales.{name}" for name in names)
    policies = replaced("sales-readers", schemas=frozenset(), data_sources=sources)
    return snapshot(f"r{len(names)}", sources=SALES_MORE, policies=policies)


def test_a_policy_that_loses_a_table_it_still_registers_names_it_gone():
    five, four = naming("orders", "t0", "t1", "t2", "t3"), naming("orders", "t0", "t1", "t2")
    t3 = frozenset({("hive", "sales", "t3")})
    assert revision_delta(five, four).policies == (
        Retargeted(0, READERS, gone=t3, relative=True, count=4),
    )
    assert revision_delta(four, five).policies == (
        Retargeted(0, READERS, tables=t3, relative=True, count=5),
    )


def test_whole_targets_for_a_watcher_that_does_not_read_relative_ones():
    new = snapshot("r2", sources=SOURCES[1:])
    delta = revision_delta(BEFORE, new)
    assert delta.relative and not delta.absolute().relative
    assert delta.absolute().policies == (Retargeted(0, READERS, frozenset({("hive", "sales")})),)
    assert delta.absolute().tables == delta.tables


def test_a_table_tag_changes_the_grants_of_tag_policies_not_the_registry():
    eu = frozenset({"eu"})
    before = snapshot("r1", sources=[*SOURCES[:1], source("sales", "refunds", eu), *SOURCES[2:]])
    tagged = [source("sales", "orders", eu), source("sales", "refunds", eu), *SOURCES[2:]]
    delta = revision_delta(before, snapshot("r2", sources=tagged))
    assert (delta.users, delta.groups, delta.tables) == ({"ben"}, frozenset(), frozenset())
    paris = PolicyGrant("paris", Access.READ)
    assert delta.policies == (Retargeted(2, paris, frozenset({("hive", "sales")})),)


def test_a_policy_given_its_first_trino_table_is_retargeted_at_its_position():
    # "paris" targets no table before (none is tagged eu): it is listed all the same, empty
    delta = delta_to(sources=[source("sales", "orders", frozenset({"eu"})), *SOURCES[1:]])
    assert (delta.users, delta.everything) == ({"ben"}, False)
    paris = PolicyGrant("paris", Access.READ)
    assert delta.policies == (
        Retargeted(2, paris, tables=frozenset({("hive", "sales", "orders")})),
    )


def test_policies_added_or_removed_say_where_each_policy_moved():
    # entitlements name policies by position: the sidecar must know the new list
    added = revision_delta(snapshot("r0", policies=POLICIES[1:2]), BEFORE)
    assert added.order == (-1, 0, -1) and not added.everything
    assert [p.position for p in added.policies] == [0, 2]  # the two added, with their tables
    assert added.groups == {"analysts"} and added.users == {"ann", "cy", "ben"}
    removed = delta_to(policies=POLICIES[1:])
    assert (removed.order, removed.policies, removed.groups) == ((1, 2), (), {"analysts"})
    assert delta_to().order is None


def test_a_policy_edit_that_moves_its_tables_retargets_it():
    moved = {"schemas": frozenset(), "data_sources": frozenset({"c.hive.sales.orders"})}
    delta = delta_to(policies=replaced("hr-readers", **moved))
    assert delta.groups == {"hr"} and not delta.everything
    hr = PolicyGrant("hr-readers", Access.READ)
    # one table of a schema of two: named singly
    assert delta.policies == (Retargeted(1, hr, tables=frozenset({("hive", "sales", "orders")})),)


def test_what_it_does_not_reason_about_drops_everything():
    anyone = Policy("all", Access.READ, anyone=True, schemas=frozenset({"c.hive.sales"}))
    flushes = {
        "mapping": delta_to(mapping=AccessGrantMapping(read=frozenset(Access))),
        "a policy for anyone": delta_to(policies=(*POLICIES, anyone)),
        "the policies' order": delta_to(policies=POLICIES[::-1]),
        "the registry incomplete": delta_to(complete=False),
    }
    assert {why: d.everything for why, d in flushes.items()} == dict.fromkeys(flushes, True)


def test_a_change_too_large_to_list_drops_everything():
    many = [source("bulk", f"t{i}") for i in range(LARGEST + 1)]
    delta = delta_to(sources=[*SOURCES, *many])
    assert delta.everything and delta.previous == "r1"


def test_either_form_patches_the_old_registry_into_the_new_one():
    wide = replaced("sales-readers", schemas=frozenset({"c.hive.sales", "c.hive.hr"}))
    many = [source("sales", f"new{i}") for i in range(100)]
    eu = source("sales", "orders", frozenset({"eu"}))
    changes = {
        "a table less by name": (naming("orders", "refunds", "t0"), naming("orders", "refunds")),
        "a table added": (BEFORE, snapshot("r2", sources=[*SOURCES, source("sales", "t")])),
        "a table dropped": (BEFORE, snapshot("r2", sources=SOURCES[1:])),
        "100 dropped": (snapshot("r0", sources=[*SOURCES, *many]), BEFORE),
        "a table tagged": (BEFORE, snapshot("r2", sources=[eu, *SOURCES[1:]])),
        "a schema more": (BEFORE, snapshot("r2", policies=wide)),
        "a schema less": (snapshot("r0", policies=wide), BEFORE),
        "a policy added": (snapshot("r0", policies=POLICIES[1:]), BEFORE),
    }
    for why, (old, new) in changes.items():
        delta = revision_delta(old, new)
        for form in (delta, delta.absolute()):
            patched = old.registry.patched(form.tables, form.entries, form.policies, form.order)
            assert patched.policies == new.registry.policies, why


def test_a_relative_form_applied_to_other_targets_than_the_pdp_held_does_not_fit():
    # the sidecar's policy table must have been the PDP's: the count it finds says so
    delta = revision_delta(naming("orders", "t0", "t1", "t2", "t3"), naming("orders", "t0", "t1"))
    other = naming("orders", "t0", "t1", "t2", "t3", "t4").registry
    with pytest.raises(ValueError, match="retargeted from other tables"):
        other.patched(delta.tables, delta.entries, delta.policies, delta.order)


def test_an_older_watcher_whose_whole_form_is_past_the_bound_drops_everything(monkeypatch):
    # relative: 2 users, 1 group, 1 table gone; whole: the 3 tables the policy still names
    monkeypatch.setattr(delta_module, "LARGEST", 5)
    revisions = Revisions(naming("orders", "t0", "t1", "t2"))
    revisions.publish(naming("orders", "t0", "t1"))
    assert revisions.delta.size == 4 and revisions.delta_from("r4") is revisions.delta
    assert revisions.delta_from("r4", relative=False) is None


def test_a_relative_form_for_a_policy_not_held_does_not_fit():
    # what a faulty or hostile stream could send: relative to nothing, or past the list
    held = BEFORE.registry
    empty: frozenset = frozenset()
    added = Retargeted(0, READERS, relative=True, count=0)
    beyond = Retargeted(len(held.policies), READERS, relative=True, count=0)
    order = (-1, *range(len(held.policies)))
    with pytest.raises(ValueError, match="from nothing held"):
        held.patched(empty, Registry(), [added], order)
    with pytest.raises(ValueError, match="not held there"):
        held.patched(empty, Registry(), [beyond])
