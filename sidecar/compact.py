"""The product plugin's endpoints (trino-plugin/): not the OPA contract, a compact one.

`POST /v1/pdp/decisions` answers every ask of one Trino call in one request, for one user:

    {"identity": {"user": "alice", "groups": ["analysts"]},
     "asks": [{"operation": "SelectFromColumns", "resource": {"table": {...}}},
              {"operation": "FilterTables", "filterResources": [{"table": {...}}, ...]},
              {"operation": "GetRowFilters", "resource": {"table": {...}}},
              {"operation": "GetColumnMask", "filterResources": [{"column": {...}}, ...]}]}

Each ask is an OPA `action` (operation, resource, targetResource or filterResources, in the
contract's shapes), answered by the same path as the OPA endpoints: the same decoder, the same
per-revision caches and decisions, the same fail-closed answers. The answer, in order:

    {"revision": "r12" | null,
     "answers": [{"allowed": false, "reason": "..."},   # a check
                 {"indices": [0, 2]},                    # a filter: the items allowed
                 {"rowFilters": ["region = 'emea'"]},    # GetRowFilters
                 {"masks": [null, "'****'"]}]}           # GetColumnMask: one per column

`revision` names what every answer was computed from: the PDP's policy revision and a digest
of the cluster's own settings (cluster.properties, its mapping: they change decisions without a
new PDP revision), the same in every worker. It is null (use the answers once, keep none) when
the sidecar holds no revision (no PDP yet, or past its staleness bound), when it moved
meanwhile, or when an ask needed the user's entitlements and the sidecar could not get them
(its fail-closed fallback is an answer for now, not for the whole revision). The plugin caches
an answer only under the revision it holds.

`SelectFromColumns` is decided per table: the answer depends on the user, their groups and the
table, never on the `columns` of the resource (the decoder drops them; pdp/core/decide.py rules
on the table), so it is the same for any set of the table's columns, none included. The plugin
asks it without columns and keeps one answer per (user, groups, table), which it may ask beside
the first other ask about the table (tests/sidecar/test_compact_columns.py holds the sidecar to
this; a decision that weighs columns must change the plugin's keys first).

`POST /v1/pdp/watch` with `{"revision": "r12" | null, "waitSeconds": 20}` answers
`{"revision": ...}` as soon as the sidecar's revision differs from the one given, else after
`waitSeconds` (at most 60): a long poll that tells the plugin to drop its cache, and that it
hears from the sidecar at least that often (its staleness bound counts from the last word).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING, Any

import orjson

from pdp.core.model import Identity
from pdp.core.operations import needs_grants
from pdp.wire.trino import FILTERS, BadRequest, decode_document, single_key

if TYPE_CHECKING:
    from pdp.core.model import ClusterSettings
    from sidecar.answers import Answers
    from sidecar.app import Sidecar

DECISIONS, WATCH = "/v1/pdp/decisions", "/v1/pdp/watch"
MAX_WAIT_SECONDS = 60.0
WATCH_POLL_SECONDS = 0.01  # how soon a new revision reaches a waiting watch (cheap: one look)
MAX_ASKS = 10_000  # asks in one body (each filter ask is also bounded by http.maxBatchItems)


async def decisions(sidecar: Sidecar, body: bytes) -> bytes:
    request = _object(_parse(body), "body")
    identity = _object(request.get("identity"), "identity")
    asks = request.get("asks")
    if not isinstance(asks, list):
        raise BadRequest("asks: expected a list")
    if len(asks) > MAX_ASKS:
        raise BadRequest(f"asks: {len(asks)} asks; the limit is {MAX_ASKS}")
    answers = sidecar.answers
    assert answers is not None  # set at startup, before any request
    revision, found, fallback = _revision(answers), [], False
    for i, ask in enumerate(asks):
        found.append(await _answer(sidecar, identity, _object(ask, f"asks[{i}]"), i))
        # decoded by now, so well formed; without the user's view, the answer was a fallback
        user = Identity(identity["user"], frozenset(identity.get("groups", ())))
        fallback |= needs_grants(str(ask["operation"])) and not answers.has_view(user)
    if fallback or _revision(answers) != revision:
        revision = None  # a fallback, or computed across two revisions: usable once
    return orjson.dumps({"revision": revision, "answers": found})


def _revision(answers: Answers) -> str | None:
    if answers.revision is None:
        return None
    return f"{answers.revision}+{_digest(answers.cluster_settings())}"


_digested: tuple[ClusterSettings | None, str] = (None, "")


def _digest(settings: ClusterSettings) -> str:
    """A digest of the settings' content (not of the object: workers must agree), computed
    once per settings object."""
    global _digested
    if _digested[0] is not settings:
        text = orjson.dumps(settings, default=_plain, option=orjson.OPT_SORT_KEYS)
        _digested = (settings, hashlib.sha256(text).hexdigest()[:12])
    return _digested[1]


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):  # in a fixed order, whatever the hash seed
        return sorted(value, key=lambda item: orjson.dumps(item, default=_plain))
    if hasattr(value, "pattern"):  # a compiled regular expression (immuta.user.admin)
        return value.pattern
    raise TypeError(f"cannot digest {type(value).__name__}")


async def _answer(sidecar: Sidecar, identity: Any, ask: dict[str, Any], index: int) -> Any:
    """One ask answered through the OPA endpoints' own handlers (sidecar/app.py)."""
    document = {"input": {"context": {"identity": identity}, "action": ask}}
    operation = ask.get("operation")
    try:
        if operation == "GetRowFilters":
            result = orjson.loads(await sidecar._row_filters(orjson.dumps(document)))["result"]
            return {"rowFilters": [f["expression"] for f in result]}
        if operation == "GetColumnMask":
            items = ask.get("filterResources")
            if not isinstance(items, list):
                raise BadRequest("filterResources: GetColumnMask asks for a list of columns")
            result = orjson.loads(await sidecar._batch_column_masks(orjson.dumps(document)))
            masks: list[str | None] = [None] * len(items)
            for mask in result["result"]:
                masks[mask["index"]] = mask["viewExpression"]["expression"]
            return {"masks": masks}
        if operation in FILTERS and "filterResources" in ask:
            result = orjson.loads(await sidecar._batch(orjson.dumps(document)))["result"]
            return {"indices": result}
        return await _check(sidecar, document)
    except BadRequest as exc:
        raise BadRequest(f"asks[{index}]: {exc}") from None


async def _check(sidecar: Sidecar, document: dict[str, Any]) -> dict[str, Any]:
    """A single check, as `/allow` decides it, with the decision's reason."""
    if "filterResources" in document["input"]["action"]:
        raise BadRequest("filterResources: only filter operations and GetColumnMask take them")
    call = decode_document(document)
    decision = await sidecar.answers.decide(call.request(), single_key(document))
    allowed = decision.allowed
    sidecar.stats.decisions[call.operation, "allow" if allowed else "deny"] += 1
    if sidecar.decision_log is not None:  # logged as /allow logs it
        sidecar.decision_log.record("allow", document, allowed, allowed, decision)
    if allowed:
        return {"allowed": True}
    return {"allowed": False, "reason": decision.reason}


async def watch(sidecar: Sidecar, body: bytes) -> bytes:
    request = _object(_parse(body), "body")
    known = request.get("revision")
    if known is not None and not isinstance(known, str):
        raise BadRequest("revision: expected a string or null")
    wait = request.get("waitSeconds", MAX_WAIT_SECONDS)
    if not isinstance(wait, int | float) or isinstance(wait, bool) or wait < 0:
        raise BadRequest("waitSeconds: expected a number of seconds")
    deadline = time.monotonic() + min(float(wait), MAX_WAIT_SECONDS)
    answers = sidecar.answers
    assert answers is not None
    while _revision(answers) == known and time.monotonic() < deadline:
        await asyncio.sleep(WATCH_POLL_SECONDS)
    return orjson.dumps({"revision": _revision(answers)})


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: expected an object")
    return value


ENDPOINTS = {DECISIONS: decisions, WATCH: watch}
