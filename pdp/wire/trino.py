"""Decoding the OPA plugin's request bodies (trino-opa-contract.md section 3).

Unknown fields are ignored (Trino 478-484 differ in `properties`, `queryId`,
`extraCredentials`), but anything the decision depends on must be present and well typed:
otherwise `BadRequest` says what is wrong and where, and the sidecar answers 400, which makes
the plugin fail the query (fail closed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pdp.core.model import (
    CatalogRef,
    ColumnRef,
    FunctionRef,
    Identity,
    Request,
    Resource,
    SchemaRef,
    SessionPropertyRef,
    TableRef,
    UserRef,
)


class BadRequest(Exception):
    pass


# Which resource each operation carries (trino-opa-contract.md section 4): the JSON key under
# `resource` (or under each `filterResources` item), None for no resource. An operation missing
# here (a newer Trino) is decoded leniently and denied by the core as unknown.
_BY_KIND = {
    None: "ExecuteQuery ReadSystemInformation WriteSystemInformation",
    "user": "ImpersonateUser ViewQueryOwnedBy KillQueryOwnedBy FilterViewQueryOwnedBy",
    "systemSessionProperty": "SetSystemSessionProperty",
    "catalogSessionProperty": "SetCatalogSessionProperty",
    "catalog": "AccessCatalog CreateCatalog DropCatalog ShowSchemas FilterCatalogs",
    "schema": "CreateSchema DropSchema RenameSchema SetSchemaAuthorization ShowCreateSchema "
    "ShowTables ShowFunctions FilterSchemas",
    "table": "ShowCreateTable CreateTable DropTable RenameTable SetTableProperties "
    "SetTableComment SetViewComment SetMaterializedViewComment SetColumnComment ShowColumns "
    "FilterTables FilterColumns AddColumn AlterColumn DropColumn RenameColumn "
    "SetTableAuthorization SelectFromColumns InsertIntoTable DeleteFromTable TruncateTable "
    "UpdateTableColumns CreateView RenameView SetViewAuthorization DropView "
    "CreateViewWithSelectFromColumns CreateMaterializedView RefreshMaterializedView "
    "SetMaterializedViewProperties DropMaterializedView RenameMaterializedView GetRowFilters "
    "ExecuteTableProcedure",
    "function": "ExecuteProcedure ExecuteFunction CreateViewWithExecuteFunction CreateFunction "
    "DropFunction ShowCreateFunction FilterFunctions",
    "column": "GetColumnMask",
}
RESOURCE_KIND: dict[str, str | None] = {
    operation: kind for kind, names in _BY_KIND.items() for operation in names.split()
}
# Operations that arrive with `filterResources` in batch mode, and those that need a target.
FILTERS = frozenset(
    [
        "FilterCatalogs",
        "FilterSchemas",
        "FilterTables",
        "FilterColumns",
        "FilterFunctions",
        "FilterViewQueryOwnedBy",
        "GetColumnMask",
    ]
)
RENAMES = frozenset(["RenameSchema", "RenameTable", "RenameView", "RenameMaterializedView"])


@dataclass(frozen=True, slots=True)
class Call:
    """One decoded body. `items` holds `filterResources` for batch calls, else None."""

    identity: Identity
    operation: str
    resource: Resource | None
    target: Resource | None
    items: tuple[Resource, ...] | None
    columns: tuple[str, ...] = ()  # FilterColumns in batch mode: the answer indexes these

    def request(self, resource: Resource | None = None) -> Request:
        return Request(self.identity, self.operation, resource or self.resource, self.target)


def parse(body: bytes) -> Any:
    """The JSON document of a body; BadRequest when it is not JSON or names a key twice in an
    object (a parser keeps one of the two silently: which one the sender meant is unknown)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not _canonical(body, document):
        _refuse_duplicate_keys(body)
    return document


def _canonical(body: bytes, document: Any) -> bool:
    """Whether `body` is byte for byte the compact serialization of `document` (Trino's bodies
    are), and so names each key once: a cheap check (a fifth of the parse) that spares most
    bodies the one object by object, which costs several parses."""
    try:
        return orjson.dumps(document) == body
    except orjson.JSONEncodeError:
        return False


def _refuse_duplicate_keys(body: bytes) -> None:
    """Raise BadRequest naming the first key found twice in one object, if there is one."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) < len(pairs):
            seen: set[str] = set()
            for twice, _ in pairs:
                if twice in seen:
                    break
                seen.add(twice)
            raise BadRequest(
                f"body: key {twice!r} appears twice in one object (each key may appear once)"
            )
        return found

    try:
        json.loads(body, object_pairs_hook=unique)
    except ValueError as exc:  # orjson accepted it; the standard parser should too
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # orjson allows 1,024 levels, this parser fewer
        raise BadRequest("body: nested too deeply") from None


def decode(body: bytes) -> Call:
    return decode_document(parse(body))


def decode_document(document: Any) -> Call:
    context = _object(_object(document, "body").get("input"), "input")
    action = _object(context.get("action"), "input.action")
    identity = _identity(_object(context.get("context"), "input.context").get("identity"))
    operation = _string(action.get("operation"), "input.action.operation")
    known = operation in RESOURCE_KIND
    kind = RESOURCE_KIND.get(operation)
    expected = kind if known else "?"
    items = action.get("filterResources")
    columns: tuple[str, ...] = ()
    if items is not None:
        if known and operation not in FILTERS:
            raise BadRequest(f"input.action.filterResources: {operation} is not a filter operation")
        if not isinstance(items, list):
            raise BadRequest("input.action.filterResources: expected a list")
        if operation == "FilterColumns" and items:
            columns = _columns(items)
        items = tuple(
            _resource(item, f"input.action.filterResources[{i}]", operation, expected)
            for i, item in enumerate(items)
        )
    resource = action.get("resource")
    target = action.get("targetResource")
    if known and items is None:
        if kind is None and resource is not None:
            raise BadRequest(f"input.action.resource: {operation} carries no resource")
        if kind is not None and resource is None:
            raise BadRequest(f"input.action.resource: {operation} needs a {kind}, got nothing")
        if operation in RENAMES and target is None:
            raise BadRequest(
                f"input.action.targetResource: {operation} needs the new name, got nothing"
            )
    return Call(
        identity=identity,
        operation=operation,
        resource=None
        if resource is None
        else _resource(resource, "input.action.resource", operation, expected),
        target=None
        if target is None
        else _resource(target, "input.action.targetResource", operation, expected),
        items=items,
        columns=columns,
    )


# --- cache keys straight from the parsed JSON --------------------------------------------------
#
# A cache hit should not pay for building the dataclasses above. These keys name exactly the
# fields decode_document() reads for the decision (user, groups, operation, the resource) and
# nothing else (no queryId, no columns). The sidecar stores a decision under such a key only
# after decode_document() accepted the body, and only non-empty strings (and tuples of strings)
# compare equal to what it accepted, so a body that hits is one decode_document() would accept
# with the same request. Anything unusual (targetResource, other resource kinds, wrong types)
# gets no key and takes the full decoder, which also produces the 400 for malformed bodies.

Key = tuple[Any, ...]
_MALFORMED = (KeyError, TypeError, AttributeError, IndexError)


def single_key(document: Any) -> Key | None:
    """The cache key of an `/allow` body, or None when it must be decoded in full."""
    try:
        head, action = _head(document)
        if action.get("filterResources") is not None:
            return None
        resource = action.get("resource")
        tail = () if resource is None else _resource_key(resource)
        if tail is None:
            return None
        key = head + tail
        hash(key)  # unhashable parts (objects, lists) mean a malformed body: no key
        return key
    except _MALFORMED:
        return None


def resource_names(key: Key) -> tuple[str, ...] | None:
    """The names of the resource of the request `decode_document` makes of an `/allow` body
    whose `single_key` is `key`: (catalog, schema, table) of a table, (catalog, schema) of a
    schema, (catalog,) of a catalog, () for none. None when the key alone cannot say (an
    operation this version does not know, a rename, a resource under another kind than the
    operation's, a user or a name that is not a non-empty string, a group not a string): the
    full decoder decides, or refuses, those."""
    user, groups, operation = key[0], key[1], key[2]
    kind = RESOURCE_KIND.get(operation, "?")
    if kind == "?" or operation in RENAMES or user.__class__ is not str or not user:
        return None
    for group in groups:  # a loop, not any(): no generator per check (a third of this)
        if group.__class__ is not str:
            return None
    if kind is None:
        return () if len(key) == 3 else None
    if len(key) < 4 or key[3] != kind:  # single_key's tails: table, schema or catalog
        return None
    names: tuple[str, ...] = key[4:]
    for name in names:
        if name.__class__ is not str or not name:
            return None
    return names


def request_of(key: Key) -> Request | None:
    """The request `decode_document` makes of an `/allow` body whose `single_key` is `key`,
    without the objects on the way there; None as `resource_names` says."""
    names = resource_names(key)
    if names is None:
        return None
    resource = _FROM_NAMES[len(names)](*names) if names else None
    return Request(Identity(key[0], frozenset(key[1])), key[2], resource)


_FROM_NAMES: dict[int, Callable[..., Resource]] = {1: CatalogRef, 2: SchemaRef, 3: TableRef}


def batch_keys(document: Any) -> list[Key | None] | None:
    """The cache keys of a batch body's `filterResources`, one per item (None where an item
    has no fast key), or None when the body must be decoded in full."""
    try:
        head, action = _head(document)
        items = action["filterResources"]
        if items.__class__ is not list or action.get("resource") is not None:
            return None
        user, groups, operation = head
        if operation not in FILTERS:  # decoded in full, to be refused
            return None
        keys: list[Key | None] = []
        for item in items:
            # FilterTables is the bulk of it (100 items a body): its key is built inline, the
            # same as head + _resource_key(item) would build it.
            if (t := item.get("table")) is not None and "columns" not in t:
                keys.append(
                    (
                        user,
                        groups,
                        operation,
                        "table",
                        t["catalogName"],
                        t["schemaName"],
                        t["tableName"],
                    )
                )
            else:
                tail = _resource_key(item)
                keys.append(None if tail is None else head + tail)
        hash(tuple(keys))  # unhashable parts anywhere mean a malformed body: no keys
        return keys
    except _MALFORMED:
        return None


def table_keys(keys: Sequence[Key | None] | None) -> bool:
    """Whether `batch_keys` gave the keys of a FilterTables batch that the full decoder decodes
    as these very tables: one user (a non-empty string) and groups (strings), every item a
    table whose names are non-empty strings (anything else: the decoder says). A non-empty
    batch: an empty one has no key that proves the body valid."""
    first = keys[0] if keys else None
    if first is None or first[2] != "FilterTables":  # FilterColumns answers columns
        return False
    user, groups = first[0], first[1]
    if user.__class__ is not str or not user or any(g.__class__ is not str for g in groups):
        return False
    for key in keys:  # type: ignore[union-attr]  # `first` says it is a list
        # a table's key: (user, groups, operation, "table", catalog, schema, table)
        if key is None or key[3] != "table":
            return False
        catalog, schema, table = key[4], key[5], key[6]
        if not (
            catalog.__class__ is str
            and schema.__class__ is str
            and table.__class__ is str
            and catalog
            and schema
            and table
        ):
            return False
    return True


def _head(document: Any) -> tuple[Key, dict[str, Any]]:
    request = document["input"]
    action = request["action"]
    if action.get("targetResource") is not None:  # renames: rare, decoded in full
        raise KeyError("targetResource")
    identity = request["context"]["identity"]
    groups = identity.get("groups", [])
    if groups.__class__ is not list:
        raise TypeError("groups")
    return (identity["user"], tuple(groups), action["operation"]), action


def _resource_key(resource: Any) -> Key | None:
    # The same precedence as _resource(): table, then schema, then catalog.
    if (t := resource.get("table")) is not None:
        if "columns" in t:
            columns = t["columns"]
            if columns.__class__ is not list:
                raise TypeError("columns")  # no key: the full decoder answers 400
            for column in columns:  # a loop, not any(): no generator per body
                if column.__class__ is not str:
                    raise TypeError("columns")
        return ("table", t["catalogName"], t["schemaName"], t["tableName"])
    if (s := resource.get("schema")) is not None:
        return ("schema", s["catalogName"], s["schemaName"])
    if (c := resource.get("catalog")) is not None:
        return ("catalog", c["name"])
    return None


def _identity(value: Any) -> Identity:
    identity = _object(value, "input.context.identity")
    groups = identity.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise BadRequest("input.context.identity.groups: expected a list of strings")
    return Identity(_string(identity.get("user"), "input.context.identity.user"), frozenset(groups))


def _columns(items: list[Any]) -> tuple[str, ...]:
    # The plugin sends one table per FilterColumns batch request (contract section 5.2).
    if len(items) != 1:
        raise BadRequest("input.action.filterResources: FilterColumns expects exactly one table")
    table = _object(
        _object(items[0], "input.action.filterResources[0]").get("table"),
        "input.action.filterResources[0].table",
    )
    columns = table.get("columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadRequest(
            "input.action.filterResources[0].table.columns: expected a list of strings"
        )
    return tuple(columns)


def _resource(value: Any, where: str, operation: str, kind: str | None) -> Resource:
    """The resource under the key the operation carries (`kind`); for an operation this
    version does not know ("?"), the first known key in _PARSERS order."""
    resource = _object(value, where)
    if kind == "?":
        kind = next((k for k in _PARSERS if resource.get(k) is not None), None)
        if kind is None:
            raise BadRequest(f"{where}: no known resource kind among {sorted(resource)}")
    elif kind is None or resource.get(kind) is None:
        raise BadRequest(f"{where}: {operation} carries a {kind}, got {sorted(resource) or 'none'}")
    # ExecuteTableProcedure also sends `function`: the table is what is governed.
    return _PARSERS[kind](_object(resource[kind], f"{where}.{kind}"), where)


def _table(t: dict[str, Any], where: str) -> TableRef:
    if "columns" in t:
        _strings(t["columns"], f"{where}.table.columns")
    return TableRef(
        _field(t, "catalogName", where, "table"),
        _field(t, "schemaName", where, "table"),
        _field(t, "tableName", where, "table"),
    )


def _schema(s: dict[str, Any], where: str) -> SchemaRef:
    return SchemaRef(
        _field(s, "catalogName", where, "schema"), _field(s, "schemaName", where, "schema")
    )


def _catalog(c: dict[str, Any], where: str) -> CatalogRef:
    return CatalogRef(_field(c, "name", where, "catalog"))


def _function(f: dict[str, Any], where: str) -> FunctionRef:
    return FunctionRef(
        _optional(f, "catalogName", where),
        _optional(f, "schemaName", where),
        _field(f, "functionName", where, "function"),
    )


def _user(u: dict[str, Any], where: str) -> UserRef:
    return UserRef(_field(u, "user", where, "user"))


def _column(c: dict[str, Any], where: str) -> ColumnRef:
    names = ("catalogName", "schemaName", "tableName", "columnName")
    return ColumnRef(*(_field(c, k, where, "column") for k in names))


def _system_property(p: dict[str, Any], where: str) -> SessionPropertyRef:
    return SessionPropertyRef(_field(p, "name", where, "systemSessionProperty"))


def _catalog_property(p: dict[str, Any], where: str) -> SessionPropertyRef:
    return SessionPropertyRef(
        _field(p, "propertyName", where, "catalogSessionProperty"),
        _field(p, "catalogName", where, "catalogSessionProperty"),
    )


_PARSERS: dict[str, Callable[[dict[str, Any], str], Resource]] = {
    "table": _table,
    "schema": _schema,
    "catalog": _catalog,
    "function": _function,
    "user": _user,
    "column": _column,
    "systemSessionProperty": _system_property,
    "catalogSessionProperty": _catalog_property,
}


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{where}: expected a list of strings, got {_describe(value)}")
    return tuple(value)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        bad = next((v for v in value if not isinstance(v, str)), None)
        return f"a list holding {_kind(bad)}"
    return _kind(value)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: expected an object, got {_kind(value)}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where}: expected a non-empty string, got {_kind(value)}")
    return value


def _field(obj: dict[str, Any], key: str, where: str, kind: str) -> str:
    return _string(obj.get(key), f"{where}.{kind}.{key}")


def _optional(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise BadRequest(f"{where}.function.{key}: expected a string, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


# --- the same keys without parsing, for a body seen before ----------------------------------
#
# Every query has its own queryId (Trino 478 and later), so bodies repeat only once it is cut
# out. Jackson writes the field as `"queryId":"…"`; a string inside another string has its
# quotes escaped, so these bytes can only be the key itself. Two bodies that are byte for byte
# the same apart from that value (one value, of the characters Trino's ids are made of) are
# the same JSON document apart from a field none of the keys above read, so they have the same
# key. A body with the field twice, or with another value, is parsed every time.

_QUERY_ID = b'"queryId":"'
_ID_CHARACTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"


def without_query_id(body: bytes) -> bytes | None:
    """`body` with its queryId value cut out (as is without one), or None when that cannot be
    done safely: a parse-free stand-in for the body in a cache of its key."""
    at = body.find(_QUERY_ID)
    if at < 0:
        return body
    start = at + len(_QUERY_ID)
    end = body.find(b'"', start)
    if end < 0 or body.find(_QUERY_ID, end) >= 0:
        return None
    if body[start:end].translate(None, _ID_CHARACTERS):  # anything left is outside the set
        return None
    return body[:start] + body[end:]
