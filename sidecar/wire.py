"""Decoding the OPA plugin's request bodies (trino-opa-contract.md section 3).

Unknown fields are ignored (Trino 478-484 differ in `properties`, `queryId`,
`extraCredentials`), but anything the decision depends on must be present and well typed:
otherwise `BadRequest` says what is wrong and where, and the sidecar answers 400, which makes
the plugin fail the query (fail closed).
"""

from __future__ import annotations

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


def decode(body: bytes) -> Call:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    context = _object(_object(document, "body").get("input"), "input")
    action = _object(context.get("action"), "input.action")
    identity = _identity(_object(context.get("context"), "input.context").get("identity"))
    operation = _string(action.get("operation"), "input.action.operation")
    items = action.get("filterResources")
    columns: tuple[str, ...] = ()
    if items is not None:
        if not isinstance(items, list):
            raise BadRequest("input.action.filterResources: expected a list")
        if operation == "FilterColumns" and items:
            columns = _columns(items)
        items = tuple(
            _resource(item, f"input.action.filterResources[{i}]") for i, item in enumerate(items)
        )
    resource = action.get("resource")
    target = action.get("targetResource")
    return Call(
        identity=identity,
        operation=operation,
        resource=None if resource is None else _resource(resource, "input.action.resource"),
        target=None if target is None else _resource(target, "input.action.targetResource"),
        items=items,
        columns=columns,
    )


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


def _resource(value: Any, where: str) -> Resource:
    resource = _object(value, where)
    # ExecuteTableProcedure sends `table` and `function`; the table is what is governed.
    if (table := resource.get("table")) is not None:
        t = _object(table, f"{where}.table")
        return TableRef(
            _field(t, "catalogName", where, "table"),
            _field(t, "schemaName", where, "table"),
            _field(t, "tableName", where, "table"),
        )
    if (schema := resource.get("schema")) is not None:
        s = _object(schema, f"{where}.schema")
        return SchemaRef(
            _field(s, "catalogName", where, "schema"), _field(s, "schemaName", where, "schema")
        )
    if (catalog := resource.get("catalog")) is not None:
        return CatalogRef(_field(_object(catalog, f"{where}.catalog"), "name", where, "catalog"))
    if (function := resource.get("function")) is not None:
        f = _object(function, f"{where}.function")
        return FunctionRef(
            _optional(f, "catalogName", where),
            _optional(f, "schemaName", where),
            _field(f, "functionName", where, "function"),
        )
    if (user := resource.get("user")) is not None:
        return UserRef(_field(_object(user, f"{where}.user"), "user", where, "user"))
    if (column := resource.get("column")) is not None:
        c = _object(column, f"{where}.column")
        return ColumnRef(
            *(
                _field(c, k, where, "column")
                for k in ("catalogName", "schemaName", "tableName", "columnName")
            )
        )
    if (prop := resource.get("systemSessionProperty")) is not None:
        return SessionPropertyRef(
            _field(
                _object(prop, f"{where}.systemSessionProperty"),
                "name",
                where,
                "systemSessionProperty",
            )
        )
    if (prop := resource.get("catalogSessionProperty")) is not None:
        p = _object(prop, f"{where}.catalogSessionProperty")
        return SessionPropertyRef(
            _field(p, "propertyName", where, "catalogSessionProperty"),
            _field(p, "catalogName", where, "catalogSessionProperty"),
        )
    raise BadRequest(f"{where}: no known resource kind among {sorted(resource)}")


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
