"""A registry's sources as a set, and two sets' difference, computed once per change: the
very same tuple gives the very same set, the same two sets the same difference, and it is
exactly the sets' difference."""

from __future__ import annotations

from pdp.policy import DataSource
from pdp.policy.model import Technology
from pdp.policy.sourcesets import difference, source_set


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
