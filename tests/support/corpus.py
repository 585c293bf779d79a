"""The Trino OPA plugin corpus in ../shared/corpus/trino-opa (beside the repository)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "trino-opa"

ENDPOINTS = {
    None: "allow",
    "opa.policy.uri": "allow",
    "opa.policy.batched-uri": "batch",
    "opa.policy.row-filters-uri": "rowFilters",
    "opa.policy.column-masking-uri": "columnMask",
    "opa.policy.batch-column-masking-uri": "batchColumnMasks",
}


def records(name: str) -> list[dict[str, Any]]:
    path = CORPUS / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the tests replay the plugin corpus from the "
            "shared/ folder beside this repository"
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def requests() -> list[tuple[str, dict[str, Any]]]:
    """(id, record) for every record that carries a request body: 117 of them."""
    result = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for index, record in enumerate(records(path.name)):
            if "request" in record:
                result.append((f"{path.stem}-{index}-{record.get('operation', '')}", record))
    return result
