"""The data-policy side of the OPA contract (trino-opa-contract.md sections 5.3-5.5): the
columns a `GetColumnMask` body asks about, with their types, cache keys for row-filter and mask
bodies, and the answers in the plugin's exact shapes.

Answers:
* rowFilters: `{"result": [{"expression": "..."}]}` (`[]`: no filter);
* columnMask: `{"result": {"expression": "..."}}` or `{"result": null}`;
* batchColumnMasks: `{"result": [{"index": i, "viewExpression": {"expression": "..."}}]}`
  (`[]`: no mask; `result` must be present).
No `identity` is ever sent: expressions are evaluated as the session user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pdp.core.datapolicy import Mask, RowFilter
from pdp.core.model import TableKey, table_key
from pdp.wire.trino import BadRequest, Key

NULL_MASK = b'{"result":null}'


@dataclass(frozen=True, slots=True)
class MaskedColumn:
    table: TableKey
    column: str
    type: str  # the Trino type signature, "" if the body has none


def mask_columns(document: Any, batch: bool) -> tuple[MaskedColumn, ...]:
    """The columns of a GetColumnMask body, which decode_document() has already accepted (it
    checked the names); this adds each column's `columnType`."""
    action = document["input"]["action"]
    items = action["filterResources"] if batch else [action["resource"]]
    result = []
    for index, item in enumerate(items):
        column = item.get("column") if isinstance(item, dict) else None
        where = f"input.action.filterResources[{index}]" if batch else "input.action.resource"
        if not isinstance(column, dict):
            raise BadRequest(f"{where}.column: GetColumnMask needs a column")
        fields = ("catalogName", "schemaName", "tableName", "columnName")
        names = [n for k in fields if isinstance(n := column.get(k), str) and n]
        column_type = column.get("columnType", "")
        if len(names) != len(fields) or not isinstance(column_type, str):
            raise BadRequest(f"{where}.column: names and columnType must be strings")
        catalog, schema, table, name = names
        result.append(MaskedColumn(table_key(catalog, schema, table), name, column_type))
    return tuple(result)


# --- cache keys straight from the parsed JSON (see pdp.wire.trino for the reasoning) ---------

_MALFORMED = (KeyError, TypeError, AttributeError, IndexError)


def row_filters_key(document: Any) -> Key | None:
    try:
        request = document["input"]
        action = request["action"]
        identity = request["context"]["identity"]
        groups = identity.get("groups", [])
        if groups.__class__ is not list or action.get("filterResources") is not None:
            return None
        t = action["resource"]["table"]
        key = (
            "rowFilters",
            identity["user"],
            tuple(groups),
            action["operation"],
            t["catalogName"],
            t["schemaName"],
            t["tableName"],
        )
        hash(key)
        return key
    except _MALFORMED:
        return None


def masks_key(document: Any, batch: bool) -> Key | None:
    try:
        request = document["input"]
        action = request["action"]
        identity = request["context"]["identity"]
        groups = identity.get("groups", [])
        if groups.__class__ is not list:
            return None
        if batch:
            items = action["filterResources"]
            if items.__class__ is not list or action.get("resource") is not None:
                return None
        else:
            if action.get("filterResources") is not None:
                return None
            items = [action["resource"]]
        columns = []
        for item in items:
            c = item["column"]
            columns.append(
                (
                    c["catalogName"],
                    c["schemaName"],
                    c["tableName"],
                    c["columnName"],
                    c.get("columnType", ""),
                )
            )
        key = (
            "batchColumnMasks" if batch else "columnMask",
            identity["user"],
            tuple(groups),
            action["operation"],
            tuple(columns),
        )
        hash(key)
        return key
    except _MALFORMED:
        return None


# --- answers ---------------------------------------------------------------------------------


def row_filters_answer(filters: Sequence[RowFilter]) -> bytes:
    return orjson.dumps({"result": [{"expression": f.expression} for f in filters]})


def column_mask_answer(mask: Mask | None) -> bytes:
    if mask is None:
        return NULL_MASK
    return orjson.dumps({"result": {"expression": mask.expression}})


def batch_masks_answer(masks: Sequence[Mask | None]) -> bytes:
    return orjson.dumps(
        {
            "result": [
                {"index": i, "viewExpression": {"expression": m.expression}}
                for i, m in enumerate(masks)
                if m is not None
            ]
        }
    )
