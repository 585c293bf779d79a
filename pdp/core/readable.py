"""Whether a view lets its user read a table, as the TABLE rule of `decide` answers READ
(FilterTables and the like), by set lookups on folded names: no Decision, no reason text.
A batch of new table names is the case it is for: `decide` builds a reason per item, which
costs more than the lookups themselves. The answer is `decide(view, request).allowed`, always
(tests/core/test_readable.py holds the two side by side); `decide` stays the rule."""

from __future__ import annotations

from collections.abc import Sequence

from pdp.core.decide import SYSTEM_CATALOG, is_metadata_name
from pdp.core.model import Access, PolicyGrants, TableKey, View, fold
from pdp.core.operations import ALLOW, OPERATIONS, ObjectRule, OnObject

# A policy targeting fewer tables than this is merged with the other small ones into one set
# (held by the view); a larger one is looked up in the registry's own set (shared, no copy).
SMALL_TARGETS = 64
_KEY = "readable"  # its place in View.derived
Container = tuple[str, str, frozenset[TableKey]]
"""A folded (catalog, schema) with the tables the registry lists in it."""
_UNSEEN: Container = ("", "", frozenset())  # `indices`: not folded yet (told by identity)
# The checks whose answers set lookups give, by operation. TABLE_ROWS ("rows") adds a
# data-policy check to TABLE's READ, a denial only where the cluster's Trino does not ask for
# data policies: with `data_policy_uris` on, its answer is TABLE's.
_BY_CHECK = {
    ALLOW: "everyone",
    OnObject(ObjectRule.TABLE, Access.READ): "table",
    OnObject(ObjectRule.TABLE_ROWS, Access.READ): "rows",
    OnObject(ObjectRule.CATALOG_VISIBLE, Access.READ): "catalog",
    OnObject(ObjectRule.SCHEMA_VISIBLE, Access.READ): "schema",
}
_HOW = {op: _BY_CHECK[check] for op, check in OPERATIONS.items() if check in _BY_CHECK}


def allowed_without_reason(
    view: View | None, user: str, operation: str, names: tuple[str, ...]
) -> bool | None:
    """`decide(view, request).allowed` by set lookups, without the Decision and its reason,
    for the requests they answer: an operation every user may run (no view needed), READ on a
    table (SelectFromColumns, ShowColumns, ...), whether a catalog or a schema holds a table
    the user may read (AccessCatalog, ShowTables, ...). The request is `user`'s `operation` on
    the resource named `names`: a TableRef's (catalog, schema, table), a SchemaRef's
    (catalog, schema), a CatalogRef's (catalog,), or () for none. None for any other request,
    or when `view` (the user's, at hand) is None and the answer needs it: `decide` answers
    those."""
    how = _HOW.get(operation)
    if how == "everyone":
        return True
    if view is None or how is None:
        return None
    if len(names) == 3:
        if how == "table" or (how == "rows" and view.settings.data_policy_uris):
            return readable(view, user).allowed(names[0], names[1], names[2])
    elif how == "catalog" and len(names) == 1:
        return readable(view, user).visible(names[0], None)
    elif how == "schema" and len(names) == 2:
        return readable(view, user).visible(names[0], names[1])
    return None


class Readable:
    """What `decide` reads to answer READ on a table for one view's user, precomputed: built
    once per view (`readable`), so it lives at that view's revision and goes with it."""

    __slots__ = ("_everything", "_granted", "_registry", "_unregistered", "_visible")

    def __init__(self, view: View, user: str) -> None:
        settings, registry = view.settings, view.registry
        self._everything = settings.is_admin(user)
        self._registry = registry
        # visible: folded (catalog,) or (catalog, schema) the registry lists -> the answer
        self._visible: dict[tuple[str, ...], bool] = {}
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
        if self._everything or is_metadata_name(catalog, schema):
            return True
        key = (fold(catalog), fold(schema), fold(table))
        if self._registry.holds(key):
            return any(key in held for held in self._granted)
        return self._unlisted(key[0])

    def visible(self, catalog: str, schema: str | None) -> bool:
        """`decide(...).allowed` for the CATALOG_VISIBLE (schema None) and SCHEMA_VISIBLE
        rules: the container as sent may be read as no data source, or holds a table that the
        user may read. Remembered per container the registry lists (names of others are
        not kept: they cost a lookup each, and a body may name any)."""
        if self._everything:
            return True
        folded = (fold(catalog),) if schema is None else (fold(catalog), fold(schema))
        found = self._visible.get(folded)
        if found is not None:
            return found
        if self._unlisted(folded[0]):
            return True
        inside = self._registry.inside(catalog, schema)
        if not inside:
            return False
        found = self._visible[folded] = any(
            any(key in inside for key in held)
            if len(held) < len(inside)
            else any(key in held for key in inside)
            for held in self._granted
        )
        return found

    def _unlisted(self, catalog: str) -> bool:
        """Whether READ is allowed on an object the registry does not list, in the folded
        `catalog`: the non-data-source rule, or denied while the store is unknown (outside
        the system catalog)."""
        unregistered = self._unregistered
        return catalog == SYSTEM_CATALOG if unregistered is None else unregistered

    def indices(self, tables: Sequence[Sequence[str]]) -> list[int]:
        """The positions in `tables` of those `allowed`: each ends with the names (catalog,
        schema, table) as sent. A batch's tables share a few schemas, each looked at once: a
        schema the registry lists no table in (or a metadata schema) answers all of its tables
        alike, without a lookup per table."""
        if self._everything:
            return list(range(len(tables)))
        granted, unregistered = self._granted, self._unregistered
        # (catalog, schema) as sent -> folded with the tables registered in it, or the answer
        # for every table in it
        containers: dict[tuple[str, str], Container | bool] = {}
        allowed = []
        for i, names in enumerate(tables):
            catalog, schema = names[-3], names[-2]
            folded = containers.get((catalog, schema), _UNSEEN)
            if folded is _UNSEEN:
                folded = containers[catalog, schema] = self._container(catalog, schema)
            if folded is True:
                allowed.append(i)
                continue
            if folded is False:
                continue
            key = (folded[0], folded[1], fold(names[-1]))
            if key in folded[2]:
                for held in granted:
                    if key in held:
                        allowed.append(i)
                        break
            elif key[0] == SYSTEM_CATALOG if unregistered is None else unregistered:
                allowed.append(i)  # `_unlisted`, inline: a batch's items are many
        return allowed

    def _container(self, catalog: str, schema: str) -> Container | bool:
        """The folded (catalog, schema) as sent with the tables registered in it, or the
        answer for any table in it: allowed in a metadata schema, `_unlisted` where the
        registry lists no table."""
        if is_metadata_name(catalog, schema):
            return True
        folded = (fold(catalog), fold(schema))
        registered = self._registry.by_schema.get(folded)
        if registered is None:
            return self._unlisted(folded[0])
        return (*folded, registered)


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
