"""revision_delta(old, new): which identities' views and which registry entries can differ from
one snapshot to the next, and when it gives up (drop everything)."""

from __future__ import annotations

import dataclasses

from pdp.core.model import Access, AccessGrantMapping, PolicyGrant, Retargeted
from pdp.policy import DataSource, DirectoryUser, Policy, PolicySnapshot, Technology
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


def test_a_table_dropped_retargets_the_policies_covering_it():
    delta = delta_to(sources=SOURCES[1:])
    assert delta.tables == {("hive", "sales", "orders")}
    assert (delta.users, delta.groups) == (frozenset(), frozenset())
    assert delta.policies == (Retargeted(0, READERS, frozenset({("hive", "sales")})),)


def test_a_hundred_tables_added_or_dropped_in_a_covered_schema_name_it_whole():
    many = [source("sales", f"new{i}") for i in range(100)]
    bigger = snapshot("r2", sources=[*SOURCES, *many])
    for delta in (revision_delta(BEFORE, bigger), revision_delta(bigger, BEFORE)):
        assert not delta.everything and len(delta.tables) == 100
        assert delta.policies == (Retargeted(0, READERS, frozenset({("hive", "sales")})),)


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
