"""The permissions API contract the fake Unity Catalog server checks every exchange against.

Base: the schemas of the open-source Unity Catalog spec, carried in
tests/fixtures/unitycatalog/all.yaml (origin, version and license: tests/fixtures/README.md).
Overlay: what the Databricks-hosted service does differently (privileges with underscores, taken
from the installed SDK so an upgrade that changes them shows up here; lower-case securable types
including volume and function; `add`/`remove` optional; pagination fields)."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from databricks.sdk.service.catalog import Privilege, SecurableType

SPEC = Path(__file__).resolve().parents[2] / "fixtures" / "unitycatalog" / "all.yaml"
ENDPOINT = "/permissions/{securable_type}/{full_name}"


@cache
def schemas() -> dict[str, Any]:
    document = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    assert ENDPOINT in document["paths"], "the base spec lost the permissions endpoint"
    result = copy.deepcopy(document["components"]["schemas"])
    result["Privilege"] = {"type": "string", "enum": [p.value for p in Privilege]}
    result["SecurableType"] = {"type": "string", "enum": securable_types()}
    result["PermissionsChange"]["required"] = ["principal"]
    result["UpdatePermissions"]["properties"]["omit_permissions_in_response"] = {"type": "boolean"}
    listing = result["PermissionsList"]
    listing["required"] = []
    listing["properties"]["next_page_token"] = {"type": "string"}
    result["PrivilegeAssignment"]["properties"]["principal_id"] = {"type": "string"}
    result["PrivilegeAssignment"]["required"] = ["privileges"]
    for name in ("UpdatePermissions", "PermissionsChange"):  # requests: no stray fields
        result[name]["additionalProperties"] = False
    return result


def securable_types() -> list[str]:
    return sorted({t.value.lower() for t in SecurableType} | {"registered_model"})


def validate(instance: Any, schema_name: str) -> list[str]:
    return _check(instance, {"$ref": f"#/components/schemas/{schema_name}"}, "$")


_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
}


def _check(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    if "$ref" in schema:
        return _check(value, schemas()[schema["$ref"].rsplit("/", 1)[1]], where)
    problems: list[str] = []
    kind = schema.get("type")
    if (kind and not isinstance(value, _TYPES[kind])) or (kind == "integer" and value is True):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of the allowed values")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing required {key!r}")
        for key, item in value.items():
            if key in properties:
                problems += _check(item, properties[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: unknown field {key!r}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += _check(item, schema["items"], f"{where}[{index}]")
    return problems
