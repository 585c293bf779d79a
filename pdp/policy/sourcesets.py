"""The data sources of a registry as a set, and what differs between two such sets, each
computed once per change however many parts of the PDP ask (the store registry's digest and
the compiled objects both find a table change as the difference of 100,000 sources)."""

from __future__ import annotations

import threading

from pdp.policy.model import DataSource

# the last few answers, by the identity of what was asked (kept alive, so an id is not reused
# while it is held): the sources of the registry in force and of the one being compiled,
# active and retired
_HELD_AT_MOST = 4
_lock = threading.Lock()
Sources = frozenset[DataSource]
_sets: list[tuple[tuple[DataSource, ...], Sources]] = []
_differences: list[tuple[Sources, Sources, Sources, Sources]] = []


def source_set(sources: tuple[DataSource, ...]) -> Sources:
    """`sources` as a set: the very same set for the very same tuple."""
    with _lock:
        for held, found in _sets:
            if held is sources:
                return found
    found = frozenset(sources)
    with _lock:
        _sets.insert(0, (sources, found))
        del _sets[_HELD_AT_MOST:]
    return found


def difference(before: Sources, after: Sources) -> tuple[Sources, Sources]:
    """(gone, new): the sources of `before` not in `after`, and those of `after` not in
    `before`; computed once for the same two sets."""
    with _lock:
        for was, now, gone, new in _differences:
            if was is before and now is after:
                return gone, new
    gone, new = before - after, after - before
    with _lock:
        _differences.insert(0, (before, after, gone, new))
        del _differences[_HELD_AT_MOST:]
    return gone, new
