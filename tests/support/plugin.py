"""How Trino's OPA plugin reads a response (trino-opa-contract.md section 6), as a function.

It is checked against the corpus's 21 recorded response cases, then used to read every answer
the sidecar gives: an answer the plugin would turn into an error fails the test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PluginError(Exception):
    kind: str  # DeserializeFailed, PolicyNotFound, OpaServerError, QueryFailed


def read(endpoint: str, status: int | None, body: bytes | None, items: int = 0) -> Any:
    """The plugin's view of a response: bool (allow), list of indices (batch), list of
    filters (row filters), a mask dict or None (column mask), list of masks (batch masks)."""
    if status is None:
        raise PluginError("QueryFailed")
    if status == 404:
        raise PluginError("PolicyNotFound")
    if not 200 <= status < 300:
        raise PluginError("OpaServerError")
    try:
        document = json.loads(body or b"")
    except ValueError:
        raise PluginError("DeserializeFailed") from None
    if not isinstance(document, dict):
        raise PluginError("DeserializeFailed")
    result = document.get("result")
    match endpoint:
        case "allow":
            if result is None:
                return False
            if not isinstance(result, bool):
                raise PluginError("DeserializeFailed")
            return result
        case "batch":
            indices = _list(result, int)
            if any(i < 0 or i >= items for i in indices):
                raise PluginError("QueryFailed")
            return sorted(set(indices))
        case "rowFilters":
            filters = _list(result, dict)
            if not all(isinstance(f.get("expression"), str) for f in filters):
                raise PluginError("DeserializeFailed")
            return filters
        case "columnMask":
            if result is None:
                return None
            if not isinstance(result, dict) or not isinstance(result.get("expression"), str):
                raise PluginError("DeserializeFailed")
            return result
        case "batchColumnMasks":
            if "result" not in document or result is None:
                raise PluginError("DeserializeFailed")
            masks = _list(result, dict)
            for mask in masks:
                view = mask.get("viewExpression")
                if not isinstance(view, dict) or not isinstance(view.get("expression"), str):
                    raise PluginError("DeserializeFailed")
                index = mask.get("index")
                if not isinstance(index, int) or isinstance(index, bool):
                    raise PluginError("DeserializeFailed")
                if not 0 <= index < items:  # a raw index error, or a duplicate key
                    raise PluginError("QueryFailed")
            if len({m["index"] for m in masks}) != len(masks):
                raise PluginError("QueryFailed")
            return masks
    raise ValueError(f"unknown endpoint {endpoint}")


def _list(result: Any, kind: type) -> list[Any]:
    if result is None:
        return []
    if not isinstance(result, list) or not all(
        isinstance(x, kind) and not isinstance(x, bool) for x in result
    ):
        raise PluginError("DeserializeFailed")
    return result
