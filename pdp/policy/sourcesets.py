"""What differs between two registries' data sources: as sets (the store registry's digest,
which counts repeats), each computed once per change however many parts of the PDP ask; or
between two tuples without repeats, told by identity first (the compiled objects)."""

from __future__ import annotations

import operator
import threading
from itertools import compress, count

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


def changed(
    before: tuple[DataSource, ...], after: tuple[DataSource, ...]
) -> tuple[Sources, Sources]:
    """(gone, new) as `difference` gives it for the two tuples' sets, when neither holds a
    source twice (equal ones included: a path twice). A new registry's sources are mostly the
    very objects of the one before, in the same order (a file unchanged is not parsed again):
    the common head and tail are found by identity in C, a few ms for 100,000, and only what
    lies between (the changed files' sources) is looked at, by identity and then as sources.
    Hashing all 100,000 (`DataSource.__hash__` runs in the interpreter) took 0.1-0.2 s."""
    shortest = min(len(before), len(after))
    head = next(compress(count(), map(operator.is_not, before, after)), shortest)
    ends = map(operator.is_not, reversed(before), reversed(after))
    tail = min(next(compress(count(), ends), shortest), shortest - head)
    held = {id(s): s for s in before[head : len(before) - tail]}
    now = {id(s): s for s in after[head : len(after) - tail]}
    gone = frozenset(held[i] for i in held.keys() - now.keys())
    new = frozenset(now[i] for i in now.keys() - held.keys())
    return gone - new, new - gone  # an equal source parsed again is in both: not a change
