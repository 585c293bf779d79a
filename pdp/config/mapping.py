"""The `accessGrantMapping` YAML of the seeds: policy access type -> Trino access values."""

from __future__ import annotations

from pdp.config.errors import Collector
from pdp.config.yamlsource import line_of, load_yaml
from pdp.core.model import DEFAULT_MAPPING, Access, AccessGrantMapping

_VALUES = (Access.READ, Access.WRITE, Access.OWN)


def parse_mapping(text: str, file: str) -> tuple[AccessGrantMapping, Collector]:
    found = Collector(file)
    document = load_yaml(text, file)
    if not isinstance(document, dict) or "accessGrantMapping" not in document:
        found.error(line_of(document), "expected a top-level 'accessGrantMapping:' mapping")
        found.raise_if_any()
    for key in document:
        if key != "accessGrantMapping":
            found.warn(line_of(document, key), f"unknown key {key!r} ignored")
    body = document["accessGrantMapping"]
    if not isinstance(body, dict):
        found.error(line_of(document, "accessGrantMapping"), "accessGrantMapping must be a mapping")
        found.raise_if_any()
    result = {"READ": DEFAULT_MAPPING.read, "WRITE": DEFAULT_MAPPING.write}
    for key, values in body.items():
        line = line_of(body, key)
        if key not in result:
            found.error(
                line,
                f"accessGrantMapping: unknown policy access type {key!r} (expected READ or WRITE)",
            )
            continue
        if not isinstance(values, list):
            found.error(line, f"accessGrantMapping.{key}: expected a list such as ['READ']")
            continue
        granted = set()
        for index, value in enumerate(values):
            item_line = line_of(values, index)
            if value == "CREATE":
                found.error(
                    item_line,
                    f"accessGrantMapping.{key}: CREATE can never be granted "
                    "by a policy (allow it in immuta.allowed.non.immuta.datasource.operations)",
                )
            elif value not in _VALUES:
                found.error(
                    item_line,
                    f"accessGrantMapping.{key}: unknown access value {value!r} "
                    "(expected READ, WRITE or OWN)",
                )
            else:
                granted.add(Access(value))
        if Access.READ not in granted:
            found.error(line, f"accessGrantMapping.{key}: must contain READ")
        result[key] = frozenset(granted)
    found.raise_if_any()
    return AccessGrantMapping(read=result["READ"], write=result["WRITE"]), found
