"""Whether a view lets its user read a table, as the TABLE rule of `decide` answers READ
(FilterTables and the like), by set lookups on folded names: no Decision, no reason text.
A batch of new table names is the case it is for: `decide` builds a reason per item, which
costs more than the lookups themselves. The answer is `decide(view, request).allowed`, always
(tests/core/test_readable.py holds the two side by side); `decide` stays the rule."""

from __future__ import annotations

from collections.abc import Sequence

from pdp.core.decide import SYSTEM_CATALOG, is_metadata_name
from pdp.core.model import Access, PolicyGrants, TableKey, View, fold

# A policy targeting fewer tables than this is merged with the other small ones into one set
# (held by the view); a larger one is looked up in the registry's own set (shared, no copy).
SMALL_TARGETS = 64
_KEY = "readable"  # its place in View.derived
_UNSEEN = ("", "")  # Readable.indices: a container not folded yet (compared by identity)


class Readable:
    """What `decide` reads to answer READ on a table for one view's user, precomputed: built
    once per view (`readable`), so it lives at that view's revision and goes with it."""

    __slots__ = ("_everything", "_granted", "_registered", "_unregistered")

    def __init__(self, view: View, user: str) -> None:
        settings, registry = view.settings, view.registry
        self._everything = settings.is_admin(user)
        self._registered = registry.tables
        # an unregistered table: the non-data-source rule, or denied while the store is
        # unknown (True/False), except in the system catalog (None: ask the name)
        allowed = Access.READ in settings.non_datasource_operations
        self._unregistered: bool | None = allowed if registry.complete or not allowed else None
        granted: list[frozenset[TableKey]] = []
        if Access.READ in settings.datasource_operations:
            granted = _granted_sets(view)
        self._granted = tuple(granted)

    def allowed(self, catalog: str, schema: str, table: str) -> bool:
        """`decide(...).allowed` for READ on the table `catalog.schema.table` (as sent)."""
        return bool(self.indices(((catalog, schema, table),)))

    def indices(self, tables: Sequence[Sequence[str]]) -> list[int]:
        """The positions in `tables` of those `allowed`: each ends with the names (catalog,
        schema, table) as sent. A batch's tables share a few schemas, folded once each."""
        if self._everything:
            return list(range(len(tables)))
        registered, granted, unregistered = self._registered, self._granted, self._unregistered
        # (catalog, schema) as sent -> folded, or None for a metadata schema (always allowed)
        containers: dict[tuple[str, str], tuple[str, str] | None] = {}
        allowed = []
        for i, names in enumerate(tables):
            catalog, schema = names[-3], names[-2]
            folded = containers.get((catalog, schema), _UNSEEN)
            if folded is _UNSEEN:
                folded = containers[catalog, schema] = (
                    None if is_metadata_name(catalog, schema) else (fold(catalog), fold(schema))
                )
            if folded is None:
                allowed.append(i)
                continue
            key = (folded[0], folded[1], fold(names[-1]))
            if key in registered:
                for held in granted:
                    if key in held:
                        allowed.append(i)
                        break
            elif key[0] == SYSTEM_CATALOG if unregistered is None else unregistered:
                allowed.append(i)
        return allowed


def readable(view: View, user: str) -> Readable:
    """The view's `Readable` for `user` (the user the view is of), built on first ask."""
    held = view.derived.get(_KEY)
    if not isinstance(held, tuple) or held[0] != user:
        held = view.derived[_KEY] = (user, Readable(view, user))
    reads: Readable = held[1]
    return reads


def _granted_sets(view: View) -> list[frozenset[TableKey]]:
    """The tables some grant of the view lets the user read (under the cluster's mapping), as
    a few sets: the large targets as they are, the small ones and single grants merged."""
    mapping, grants = view.settings.mapping, view.grants
    small: set[TableKey] = set()
    large: list[frozenset[TableKey]] = []
    if isinstance(grants, PolicyGrants):
        for grant, tables in grants.policies:
            if Access.READ in mapping[grant.access]:
                if len(tables) < SMALL_TARGETS:
                    small |= tables
                else:
                    large.append(tables)
    else:
        small = {
            key
            for key, held in grants.items()
            if any(Access.READ in mapping[g.access] for g in held)
        }
    return [frozenset(small), *large] if small else large
