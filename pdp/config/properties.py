"""The cluster properties file: the three `immuta.*` keys of the seeds, and ours,
`pdp.trino.data.policy.uris`; Java .properties syntax.

Unknown keys are warnings, so an existing Immuta plugin file (with `immuta.endpoint`,
`immuta.apikey`, ...) can be reused unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pdp.config.errors import Collector
from pdp.core.model import ALL_ACCESS, NOBODY, Access, Settings

DATASOURCE_OPS = "immuta.allowed.immuta.datasource.operations"
NON_DATASOURCE_OPS = "immuta.allowed.non.immuta.datasource.operations"
ADMIN = "immuta.user.admin"
# `absent` when the cluster's Trino is configured without the row-filter and column-mask URIs.
DATA_POLICY_URIS = "pdp.trino.data.policy.uris"
DATA_POLICY_URIS_VALUES = {"configured": True, "absent": False}


def parse_properties(text: str, file: str) -> tuple[Settings, Collector]:
    """The settings the file gives (a key it leaves out keeps the seed default of `Settings`)."""
    found = Collector(file)
    values: dict[str, Any] = {}
    for line, key, value in _entries(text):
        if key == DATASOURCE_OPS:
            values["datasource_operations"] = _access_list(
                value, ALL_ACCESS - {Access.CREATE}, key, line, found
            )
        elif key == NON_DATASOURCE_OPS:
            values["non_datasource_operations"] = _access_list(value, ALL_ACCESS, key, line, found)
        elif key == ADMIN:
            try:
                values["admin"] = re.compile(value) if value else NOBODY
            except re.error as exc:
                found.error(line, f"{key}: invalid regular expression {value!r}: {exc}")
        elif key == DATA_POLICY_URIS:
            uris = DATA_POLICY_URIS_VALUES.get(value.strip().lower())
            if uris is None:
                found.error(line, f"{key}: {value!r} is neither 'configured' nor 'absent'")
            else:
                values["data_policy_uris"] = uris
        else:
            found.warn(line, f"unknown key {key!r} ignored")
    found.raise_if_any()
    return Settings(**values), found


def _access_list(
    value: str, allowed: frozenset[Access], key: str, line: int, found: Collector
) -> frozenset[Access]:
    result = set()
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            access = Access(item.upper())
        except ValueError:
            found.error(line, f"{key}: unknown access value {item!r} (expected {_names(allowed)})")
            continue
        if access not in allowed:
            found.error(line, f"{key}: {item!r} is not allowed here (expected {_names(allowed)})")
        result.add(access)
    return frozenset(result)


def _names(values: frozenset[Access]) -> str:
    return ", ".join(a.value for a in Access if a in values)


_SEPARATOR = re.compile(r"(?<!\\)\s*[=:]\s*|(?<!\\)\s+")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def read_entries(text: str) -> dict[str, str]:
    """A Java properties file's keys and values (the last one wins), as Java reads them."""
    return {key: value for _, key, value in _entries(text)}


def _entries(text: str) -> Iterator[tuple[int, str, str]]:
    """(line, key, value) per logical line, with continuations and escapes as Java reads them."""
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.lstrip() if logical else raw.strip()
        if not logical:
            if not stripped or stripped[0] in "#!":
                continue
            start = number
        if _continues(stripped):
            logical += stripped[:-1]
            continue
        logical += stripped
        yield start, *_split(logical)
        logical = ""
    if logical:
        yield start, *_split(logical)


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split(line: str) -> tuple[str, str]:
    match = _SEPARATOR.search(line)
    if match is None:
        return _unescape(line), ""
    return _unescape(line[: match.start()]), _unescape(line[match.end() :].strip())


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)
