"""Whom and what a cached answer is about, read back from its cache key, so that a revision's
delta (pdp.policy.delta) drops only the answers it touches.

The keys are those the sidecar stores answers under: a decision's fast key from the request
body (pdp.wire.trino: user, groups, operation, then the resource's kind and names), or one
derived from the decoded request (Identity, operation, resource, target); a data-policy
answer's key (pdp.wire.datapolicy: endpoint, user, groups, operation, the table or columns).
A key of any other shape has no scope and is always dropped."""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from pdp.core.model import (
    CatalogRef,
    ColumnRef,
    FunctionRef,
    Identity,
    SchemaRef,
    TableRef,
    fold,
)
from pdp.policy.delta import RevisionDelta

Names = tuple[str, ...]  # (catalog,), (catalog, schema) or (catalog, schema, table)
# (user, the groups Trino sent, the objects the answer is about), or None: unknown
Scope = tuple[str, Iterable[str], tuple[Names, ...]] | None

_KINDS = {"table": 3, "schema": 2, "catalog": 1}
_DATA_ENDPOINTS = {"rowFilters", "columnMask", "batchColumnMasks"}


class Touched:
    """Which scopes a delta touches: its users and groups, and the tables it lists with the
    schemas and catalogs holding them (a container's answers depend on what it holds)."""

    def __init__(self, delta: RevisionDelta) -> None:
        self.users, self.groups = delta.users, delta.groups
        tables = delta.tables
        self._objects: set[Names] = {*tables, *(k[:2] for k in tables), *(k[:1] for k in tables)}

    def identity(self, user: str, groups: Iterable[str]) -> bool:
        return user in self.users or not self.groups.isdisjoint(groups)

    def scope(self, scope: Scope) -> bool:
        if scope is None:
            return True
        user, groups, objects = scope
        if self.identity(user, groups):
            return True
        found = self._objects
        return bool(found) and any(tuple(map(fold, names)) in found for names in objects)


def decision_scope(key: Hashable) -> Scope:
    if not isinstance(key, tuple) or not key:
        return None
    head = key[0]
    if isinstance(head, Identity) and len(key) == 4:
        objects = tuple(n for r in key[2:] if (n := _names(r)) is not None)
        return head.user, head.groups, objects
    if isinstance(head, str) and len(key) >= 3 and isinstance(key[1], tuple):
        tail = key[3:]
        if not tail:
            return head, key[1], ()
        if _KINDS.get(tail[0]) == len(tail) - 1:
            return head, key[1], (tail[1:],)
    return None


def answer_scope(key: Hashable) -> Scope:
    if not isinstance(key, tuple) or len(key) < 5 or key[0] not in _DATA_ENDPOINTS:
        return None
    endpoint, user, groups = key[:3]
    if not isinstance(user, str) or not isinstance(groups, tuple):
        return None
    if endpoint == "rowFilters" and len(key) == 7:
        return user, groups, (key[4:7],)
    if endpoint != "rowFilters" and len(key) == 5:
        return user, groups, tuple(column[:3] for column in key[4])
    return None


def _names(resource: object) -> Names | None:
    match resource:
        case TableRef(catalog, schema, table) | ColumnRef(catalog, schema, table, _):
            return catalog, schema, table
        case SchemaRef(catalog, schema):
            return catalog, schema
        case CatalogRef(catalog) | FunctionRef(catalog, _, _):
            return (catalog,)
    return None
