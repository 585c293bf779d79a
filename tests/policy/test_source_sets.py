"""A registry's sources as a set, and two sets' difference, computed once per change: the
very same tuple gives the very same set, the same two sets the same difference, and it is
exactly the sets' difference; two tuples' difference told by identity first is that too."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from pdp.policy import DataSource
from pdp.policy.model import Technology
from pdp.policy.sourcesets import changed, difference, source_set


def table(name: str, *tags: str) -> DataSource:
    return DataSource("c", Technology.TRINO, "cat", "s", name, tags=frozenset(tags))


def test_the_same_tuple_is_one_set_and_an_equal_one_is_an_equal_set():
    sources = (table("a"), table("b"))
    assert source_set(sources) is source_set(sources)
    again = tuple(list(sources))  # equal, another tuple: its own set, equal
    assert source_set(again) == source_set(sources)


def test_the_difference_is_the_sources_gone_and_new_and_found_once():
    before = source_set((table("a"), table("b"), table("c", "pii")))
    after = source_set((table("a"), table("c", "public"), table("d")))
    gone, new = difference(before, after)
    assert gone == {table("b"), table("c", "pii")}
    assert new == {table("c", "public"), table("d")}
    assert difference(before, after)[0] is gone
    assert difference(after, before) == (new, gone)


def test_changed_tuples_tell_kept_objects_by_identity_and_the_rest_by_value():
    a, b, c = table("a"), table("b"), table("c", "pii")
    before = (a, b, c)
    after = (a, table("b"), table("c", "public"), table("d"))  # b parsed again: equal
    assert changed(before, after) == ({table("c", "pii")}, {table("c", "public"), table("d")})


@given(
    st.lists(st.sampled_from(["keep", "again", "retag", "drop"]), max_size=12),
    st.lists(st.sampled_from(["x", "y"]), max_size=3),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_changed_is_the_difference_of_the_sets(
    fates: list[str], added: list[str], rnd: random.Random, shuffled: bool
) -> None:
    """Whatever became of each source (kept as the very object, parsed again equal, changed,
    dropped), whatever was added where, in the same order or another, `changed` is the sets'
    difference."""
    before = tuple(table(f"t{i}") for i in range(len(fates)))
    after: list[DataSource] = []
    for source, fate in zip(before, fates, strict=True):
        if fate == "keep":
            after.append(source)
        elif fate == "again":
            after.append(table(source.name))
        elif fate == "retag":
            after.append(table(source.name, "pii"))
    for i, tag in enumerate(added):
        after.insert(rnd.randint(0, len(after)), table(f"new-{i}", tag))
    if shuffled:
        rnd.shuffle(after)
    assert changed(before, tuple(after)) == difference(frozenset(before), frozenset(after))
