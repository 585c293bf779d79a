"""The plugin model used by the replay tests reproduces the corpus's 21 response cases."""

from __future__ import annotations

import json

import pytest

from tests.support import plugin
from tests.support.corpus import ENDPOINTS, UPSTREAM_RESPONSE_CASES, records

CASES = records("response-handling.jsonl")


def expected(outcome: str):
    for kind in ("DeserializeFailed", "PolicyNotFound", "OpaServerError", "QueryFailed"):
        if kind in outcome:
            return plugin.PluginError(kind)
    if outcome.startswith("allow"):
        return True
    if outcome.startswith("deny"):
        return False
    if outcome.startswith(("nothing allowed", "no row filters")):
        return []
    if outcome == "no mask":
        return None
    if outcome.startswith("items 1,2,3"):
        return [1, 2, 3]
    if outcome.startswith("two filters"):
        return 2
    raise AssertionError(f"unrecognised outcome {outcome!r}")


def test_there_are_21_cases():
    assert len(CASES) == UPSTREAM_RESPONSE_CASES == 21


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["plugin_outcome"][:40])
def test_case(case):
    endpoint = ENDPOINTS.get(case["endpoint_property"], "allow")
    raw = case.get("response_raw")
    body = raw.encode() if isinstance(raw, str) else json.dumps(case.get("response", {})).encode()
    want = expected(case["plugin_outcome"])
    endpoints = list(ENDPOINTS.values()) if case["endpoint_property"] == "any" else [endpoint]
    for each in endpoints:
        if isinstance(want, plugin.PluginError):
            with pytest.raises(plugin.PluginError) as error:
                plugin.read(
                    each,
                    case["status"],
                    None if raw is None and "response" not in case else body,
                    items=3,
                )
            assert error.value.kind == want.kind
        else:
            got = plugin.read(each, case["status"], body, items=4)
            assert (len(got) if want == 2 else got) == want
