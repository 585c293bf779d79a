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

`FilterColumns` is decided per table too: all of the table's columns or none, as `FilterTables`
answers that table for the same user and groups. The plugin answers a listing's `FilterColumns`
of a table from the same revision's `FilterTables` answer for it, without asking (held by
tests/sidecar/test_compact_columns.py; a decision that treats the two apart must change the
plugin first).

`POST /v1/pdp/watch` with `{"revision": "r12" | null, "waitSeconds": 20}` answers
`{"revision": ...}` as soon as the sidecar's revision differs from the one given, else after
`waitSeconds` (at most 60): a long poll that tells the plugin to drop its cache, and that it
hears from the sidecar at least that often (its staleness bound counts from the last word).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from pdp.core.datapolicy import Mask, RowFilter
from pdp.core.model import Decision, TableKey, TableRef
from pdp.core.operations import needs_grants
from pdp.wire.datapolicy import MaskedColumn, mask_columns
from pdp.wire.trino import (
    FILTERS,
    BadRequest,
    Call,
    Key,
    batch_keys,
    decode_document,
    single_key,
    table_keys,
)
from sidecar.datapolicies import masks_on, row_filters_on, user_view
from sidecar.http import TooLarge, check_items

if TYPE_CHECKING:
    from pdp.core.model import ClusterSettings
    from sidecar.answers import Answers
    from sidecar.app import Sidecar

DECISIONS, WATCH = "/v1/pdp/decisions", "/v1/pdp/watch"
MAX_WAIT_SECONDS = 60.0
WATCH_POLL_SECONDS = 0.01  # how soon a new revision reaches a waiting watch (cheap: one look)
MAX_ASKS = 10_000  # asks in one body (each filter ask is also bounded by http.maxBatchItems)
# Objects asked about (a check's one, a filter's or a mask's items) in a request answered in
# the HTTP protocol (`decisions_from_memory`): deciding is then done at once, without yielding
# to the worker's other requests, so a larger request takes the ASGI path, where large filters
# are decided a slice at a time, taking turns (sidecar/turns.py).
FROM_MEMORY_OBJECTS = 256

# Two paths answer a request, with the same decoding, decisions, answers, metrics and decision
# log records: `decisions_from_memory`, called by the HTTP protocol before any ASGI work
# (sidecar/http.py) and used when every ask can be answered from what the sidecar holds (the
# user's view, or no ask needs it); else `decisions`, through ASGI, which may wait for the PDP.


@dataclass(frozen=True, slots=True)
class Ask:
    """One ask decoded as the OPA endpoints decode a body (pdp.wire.trino), and its OPA document
    (`{"input": {"context": {"identity": ...}, "action": ask}}`, what the decision log records)."""

    document: dict[str, Any]
    call: Call
    table: TableKey | None = None  # GetRowFilters'
    columns: tuple[MaskedColumn, ...] = ()  # GetColumnMask's, with their types
    # FilterTables' items as their keys (`table_keys`), when they prove the items valid: the
    # call is then decoded without them (no TableRef per table) and they are answered by set
    # lookups on the user's view, not by a decision each
    tables: Sequence[Key] | None = None

    @property
    def objects(self) -> int:
        if self.tables is not None:
            return len(self.tables)
        return max(1, len(self.call.items or ()))

    @property
    def needs_view(self) -> bool:
        """Whether answering needs the user's entitlements (the view): without them the answer
        is a fail-closed fallback."""
        operation = self.call.operation
        if operation == "GetColumnMask":
            return bool(self.columns)
        return operation == "GetRowFilters" or needs_grants(operation)


async def decisions(sidecar: Sidecar, body: bytes) -> bytes:
    """The ASGI path: every ask decoded first (a bad one refuses the request before any is
    answered), then each answered in turn, waiting for the PDP where the view is not held."""
    asks = _asks(body)
    answers = sidecar.answers
    assert answers is not None  # set at startup, before any request
    revision, found, fallback = _revision(answers), [], False
    for ask in asks:
        found.append(await _answer(sidecar, ask))
        fallback |= ask.needs_view and not answers.has_view(ask.call.identity)
    if fallback or _revision(answers) != revision:
        revision = None  # a fallback, or computed across two revisions: usable once
    return _encode(revision, found)


def decisions_from_memory(sidecar: Sidecar, body: bytes) -> bytes | None:
    """The answer when every ask can be answered now from what the sidecar holds, else None
    (the ASGI path then answers, or refuses a bad body). Nothing is counted or logged unless
    every ask is answered."""
    try:
        asks = _asks(body)
    except (BadRequest, TooLarge):
        return None
    answers = sidecar.answers
    if sum(ask.objects for ask in asks) > FROM_MEMORY_OBJECTS:
        return None
    if any(ask.needs_view and not answers.has_view(ask.call.identity) for ask in asks):
        return None
    settles = []
    for ask in asks:
        settle = _answer_now(sidecar, ask)
        if settle is None:
            return None
        settles.append(settle)
    # decided at once, with nothing awaited: the revision cannot have moved meanwhile
    return _encode(_revision(answers), [settle() for settle in settles])


FROM_MEMORY = {DECISIONS: decisions_from_memory}


def _asks(body: bytes) -> list[Ask]:
    request = _object(_parse(body), "body")
    identity = _object(request.get("identity"), "identity")
    asks = request.get("asks")
    if not isinstance(asks, list):
        raise BadRequest("asks: expected a list")
    if len(asks) > MAX_ASKS:
        raise BadRequest(f"asks: {len(asks)} asks; the limit is {MAX_ASKS}")
    return [_decode(identity, _object(ask, f"asks[{i}]"), i) for i, ask in enumerate(asks)]


def _decode(identity: Any, ask: dict[str, Any], index: int) -> Ask:
    document = {"input": {"context": {"identity": identity}, "action": ask}}
    operation, items = ask.get("operation"), ask.get("filterResources")
    filters = isinstance(operation, str) and operation in FILTERS and "filterResources" in ask
    try:
        if operation == "GetColumnMask" or filters:
            if not isinstance(items, list):
                raise BadRequest(f"filterResources: {operation} asks for a list")
            check_items(items, "filterResources")
            if operation == "FilterTables":
                tables = batch_keys(document)
                if table_keys(tables):
                    bare = {**ask, "filterResources": []}  # the rest decoded as ever
                    call = decode_document(
                        {"input": {"context": {"identity": identity}, "action": bare}}
                    )
                    return Ask(document, call, tables=tables)  # type: ignore[arg-type]
        elif "filterResources" in ask:
            raise BadRequest("filterResources: only filter operations and GetColumnMask take them")
        call = decode_document(document)
        if operation == "GetRowFilters":
            if not isinstance(call.resource, TableRef):
                raise BadRequest("input.action.resource.table: GetRowFilters needs a table")
            return Ask(document, call, table=call.resource.key)
        if operation == "GetColumnMask":
            return Ask(document, call, columns=mask_columns(document, batch=True))
        return Ask(document, call)
    except (BadRequest, TooLarge) as exc:
        raise type(exc)(f"asks[{index}]: {exc}") from None


async def _answer(sidecar: Sidecar, ask: Ask) -> dict[str, Any]:
    call, answers = ask.call, sidecar.answers
    if ask.tables is not None:
        _, allowed, asked = await sidecar.filter_tables(ask.document, ask.tables)
        return _filtered(sidecar, ask, allowed, asked)
    if ask.table is not None:
        view = await user_view(answers, call.identity)
        return _row_filters(row_filters_on(view, call.identity, ask.table))
    if call.operation == "GetColumnMask":
        view = await user_view(answers, call.identity) if ask.columns else None
        return _masks(masks_on(view, call.identity, ask.columns))
    if call.items is not None:  # as the batch endpoint decides it, taking turns
        _, allowed, asked = await sidecar.filter_batch(ask.document)
        return _filtered(sidecar, ask, allowed, asked)
    decision = await answers.decide(call.request(), single_key(ask.document))
    return _checked(sidecar, ask, decision)


def _answer_now(sidecar: Sidecar, ask: Ask) -> Callable[[], dict[str, Any]] | None:
    """`_answer` from what the sidecar holds, to be counted and logged when called; None if
    it needs the PDP."""
    call, answers = ask.call, sidecar.answers
    if ask.tables is not None:
        reads = answers.readable(call.identity)
        if reads is None:
            return None
        return partial(_filtered, sidecar, ask, reads.indices(ask.tables), len(ask.tables))
    if ask.table is not None or call.operation == "GetColumnMask":
        view = answers.held_view(call.identity)
        if view is None and ask.needs_view:
            return None
        if ask.table is not None:
            return partial(_row_filters, row_filters_on(view, call.identity, ask.table))
        return partial(_masks, masks_on(view, call.identity, ask.columns))
    if call.items is None:
        decision = answers.decided(call.request(), single_key(ask.document))
        return None if decision is None else partial(_checked, sidecar, ask, decision)
    found = _indices_now(answers, call, batch_keys(ask.document))
    return None if found is None else partial(_filtered, sidecar, ask, *found)


def _indices_now(
    answers: Answers, call: Call, keys: Sequence[Key | None] | None
) -> tuple[list[int], int] | None:
    """(the indices allowed, the items asked about) of a filter, as `Sidecar._batch_answer`
    gives them, from what the sidecar holds; None if a decision needs the PDP."""
    items = call.items or ()
    keys = keys or [None] * len(items)
    if call.operation == "FilterColumns":  # one decision for the table: all columns or none
        if not items or not call.columns:
            return [], len(items)
        decision = answers.decided(call.request(items[0]), keys[0])
        if decision is None:
            return None
        columns = len(call.columns)
        return (list(range(columns)), columns) if decision.allowed else ([], 1)
    allowed = []
    for i, (item, key) in enumerate(zip(items, keys, strict=True)):
        decision = answers.decided(call.request(item), key)
        if decision is None:
            return None
        if decision.allowed:
            allowed.append(i)
    return allowed, len(items)


def _checked(sidecar: Sidecar, ask: Ask, decision: Decision) -> dict[str, Any]:
    """A check's answer, with the decision's reason, counted and logged as `/allow` does."""
    allowed = decision.allowed
    sidecar.stats.decisions[ask.call.operation, "allow" if allowed else "deny"] += 1
    if sidecar.decision_log is not None:
        sidecar.decision_log.record("allow", ask.document, allowed, allowed, decision)
    return {"allowed": True} if allowed else {"allowed": False, "reason": decision.reason}


def _filtered(sidecar: Sidecar, ask: Ask, allowed: list[int], asked: int) -> dict[str, Any]:
    """A filter's answer, counted and logged as `/batch` does."""
    operation, decisions = ask.call.operation, sidecar.stats.decisions
    decisions[operation, "allow"] += len(allowed)
    decisions[operation, "deny"] += asked - len(allowed)
    if sidecar.decision_log is not None:
        sidecar.decision_log.record("batch", ask.document, allowed, len(allowed) == asked, None)
    return {"indices": allowed}


def _row_filters(filters: Sequence[RowFilter]) -> dict[str, Any]:
    return {"rowFilters": [f.expression for f in filters]}


def _masks(masks: Sequence[Mask | None]) -> dict[str, Any]:
    return {"masks": [None if m is None else m.expression for m in masks]}


def _encode(revision: str | None, found: list[dict[str, Any]]) -> bytes:
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
