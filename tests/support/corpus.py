"""Request bodies of Trino's OPA plugin, carried in tests/fixtures/trino-opa (its README says where
they come from): `476/`, recorded from the real Trino 476 the suite runs
(`python -m devstack.record_corpus`), and `478-484/`, taken from the plugin's own tests in newer
Trino versions.

A replay built from these never runs empty: loading fewer records than a directory is known to
hold raises, which fails the collection instead of skipping a parameter set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trino-opa"
RECORDED = FIXTURES / "476"
UPSTREAM = FIXTURES / "478-484"
# What each directory holds today: a smaller count means fixtures went missing.
UPSTREAM_REQUESTS = 117
UPSTREAM_RESPONSE_CASES = 21
RECORDED_REQUESTS = 825

ENDPOINTS = {
    None: "allow",
    "opa.policy.uri": "allow",
    "opa.policy.batched-uri": "batch",
    "opa.policy.row-filters-uri": "rowFilters",
    "opa.policy.column-masking-uri": "columnMask",
    "opa.policy.batch-column-masking-uri": "batchColumnMasks",
}


def records(name: str, directory: Path = UPSTREAM) -> list[dict[str, Any]]:
    path = directory / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing (tests/fixtures/README.md)")
    result = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not result:
        raise AssertionError(f"{path} holds no records (tests/fixtures/README.md)")
    return result


def endpoint(record: dict[str, Any]) -> str:
    """The sidecar endpoint a record's body is POSTed to: recorded records name it, the
    upstream ones name the plugin property that points at it."""
    return record.get("endpoint") or ENDPOINTS[record.get("endpoint_property")]


def requests(directory: Path = UPSTREAM, at_least: int = UPSTREAM_REQUESTS) -> list[Any]:
    """(id, record) for every record of `directory` that carries a request body."""
    result = []
    for path in sorted(directory.glob("*.jsonl")):
        for index, record in enumerate(records(path.name, directory)):
            if "request" in record:
                result.append((f"{path.stem}-{index}-{record.get('operation', '')}", record))
    if len(result) < at_least:
        raise AssertionError(
            f"{directory} holds {len(result)} request bodies, fewer than the {at_least} it is "
            "known to hold (tests/fixtures/README.md)"
        )
    return result


def operations(directory: Path, at_least: int) -> set[str]:
    """The operation names of the request bodies in `directory`."""
    return {r["request"]["input"]["action"]["operation"] for _, r in requests(directory, at_least)}
