"""The HTTP front end: a raw ASGI app (no framework on the hot path, pre-encoded answers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from pdp.auth import AsyncTokenSource
from pdp.collector import Frozen, made_frozen
from pdp.config.watch import Watched
from pdp.core.model import TableRef
from pdp.core.operations import needs_grants
from pdp.wire import datapolicy
from pdp.wire.trino import (
    BadRequest,
    Call,
    Key,
    batch_keys,
    decode_document,
    parse,
    resource_names,
    single_key,
    table_keys,
)
from sidecar import compact, http
from sidecar.answers import Answers
from sidecar.bodykeys import BodyKeys
from sidecar.config import SidecarConfig, load_sidecar_config
from sidecar.datapolicies import answer_masks, answer_row_filters
from sidecar.decisionlog import DecisionLog
from sidecar.health import health
from sidecar.http import TooLarge, check_items
from sidecar.metrics import WorkerStats, render
from sidecar.pdp_client import PdpClient, PdpUnavailable
from sidecar.reload import SidecarYaml, watch_cluster
from sidecar.state import StateFile
from sidecar.turns import Turn, Turns

log = logging.getLogger(__name__)

TRUE, FALSE = b'{"result":true}', b'{"result":false}'
EMPTY_LIST, NULL = b'{"result":[]}', b'{"result":null}'
PREFIX = "/v1/data/trino/"
CONTENT_TYPE = (b"content-type", b"application/json")
METRICS_TYPE = (b"content-type", CONTENT_TYPE_LATEST.encode())
METRICS_DIR_ENV = "SIDECAR_METRICS_DIR"  # shared by the workers of one sidecar (__main__)
# A worker's threads (a revision's delta decoded, its registry moved) run Python as well: one
# holds the interpreter until it waits or this interval ends, and meanwhile the event loop
# answers no check. Python's default interval is 5 ms.
GIL_SWITCH_SECONDS = 0.001

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Sidecar:
    """A started sidecar, every part built (`Sidecar.start`): the PDP client, the answers, the
    watched configuration and the background tasks that keep them current."""

    def __init__(
        self,
        config: SidecarConfig,
        client: PdpClient,
        answers: Answers,
        watched: tuple[Watched[Any], ...],
        state: StateFile | None,
    ) -> None:
        self.config, self.answers, self._client = config, answers, client
        self._watched, self._state = watched, state
        self._tasks: list[asyncio.Task] = []
        self._in_flight = 0
        # one per endpoint: each maps bodies to the keys of its own cache
        self._allow_keys, self._row_filter_keys = BodyKeys(), BodyKeys()
        self._mask_keys, self._batch_mask_keys = BodyKeys(), BodyKeys()
        self._batch_keys = BodyKeys()
        self._turns = Turns()  # batches take turns, a slice at a time
        self.stats = WorkerStats(self._gauges)
        self._metrics_dir = Path(os.environ.get(METRICS_DIR_ENV) or tempfile.mkdtemp())
        self._revision_since = time.monotonic()
        self.decision_log = (
            DecisionLog(config.decision_log, lambda: answers.revision)
            if config.decision_log
            else None
        )
        self._frozen = Frozen()  # long-lived objects out of the collector's way

    @classmethod
    async def start(cls, config: SidecarConfig) -> Sidecar:
        """Build the sidecar from its configuration and start its background tasks."""
        tokens = AsyncTokenSource(config.pdp_auth) if config.pdp_auth else None
        client = PdpClient(config.pdp_target, config.pdp_timeout, tokens, config.pdp_tls)
        # the cluster's files changing resets the answers built on them
        cluster = watch_cluster(config, on_change=lambda _: answers.reset(answers.revision))
        answers = Answers(
            lambda: cluster.current,
            client,
            config.user_cache,
            config.decision_cache,
            config.max_stale,
            config.view_grants,
        )
        sidecar_yaml = SidecarYaml(config, cluster, answers)
        state = StateFile(config.state_file, answers) if config.state_file is not None else None
        sidecar = cls(config, client, answers, (sidecar_yaml.watched, cluster), state)
        await sidecar._run(sidecar_yaml.interval)
        return sidecar

    async def _run(self, interval: Callable[[], float]) -> None:
        self._tasks = [
            asyncio.create_task(self.answers.watch()),
            *(asyncio.create_task(w.run(interval)) for w in self._watched),
            asyncio.create_task(self._save_stats()),
        ]
        if self.decision_log is not None:
            self._tasks.append(asyncio.create_task(self.decision_log.run()))
        else:
            log.info("decision log: off (no decisionLog section in %s)", self.config.file)
        if self._state is not None:
            await self._state.start()
            self._tasks.append(asyncio.create_task(self._state.run()))
        self.stats.collections.start()
        self._frozen.settle()  # what start loaded (code, configuration) lives as long as we do
        sys.setswitchinterval(GIL_SWITCH_SECONDS)

    async def stop(self) -> None:
        self.stats.collections.stop()
        if self._state is not None:  # the latest word, for a restart while the PDP is away
            with contextlib.suppress(OSError):
                await self._state.save()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.decision_log is not None:
            await self.decision_log.flush()
        await self._client.close()

    async def serve(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Answer one HTTP request."""
        start = time.perf_counter()
        status, body = await self._respond(scope, receive)
        path = scope["path"]
        self.stats.observe(
            path[len(PREFIX) :] if path.startswith(PREFIX) else path,
            status,
            time.perf_counter() - start,
        )
        await _send(send, status, body, METRICS_TYPE if path == "/metrics" else CONTENT_TYPE)

    async def _respond(self, scope: dict[str, Any], receive: Receive) -> tuple[int, bytes]:
        path = scope["path"]
        if scope["method"] == "GET" and path in MONITORING:
            return MONITORING[path](self)
        # the OPA contract's endpoints, or the product plugin's compact ones (sidecar/compact.py)
        prefixed = path.startswith(PREFIX)
        endpoint = ENDPOINTS.get(path[len(PREFIX) :]) if prefixed else compact.ENDPOINTS.get(path)
        if endpoint is None:
            return 404, _error(f"no such endpoint {path!r}")
        if scope["method"] != "POST":
            return 405, _error("use POST")
        limits = http.LIMITS
        if self._in_flight >= limits.max_in_flight:
            return 503, _error(f"more than {limits.max_in_flight} requests in flight; retry")
        declared = _content_length(scope)
        if declared is not None and declared > limits.max_body_bytes:
            return 413, _error(f"body of {declared} bytes; the limit is {limits.max_body_bytes}")
        self._in_flight += 1
        try:
            message = await receive()
            body = message.get("body", b"")
            if message.get("more_body"):  # Trino's bodies mostly arrive in one piece
                body = await _rest_of_body(receive, body, limits.max_body_bytes)
            if body is None or len(body) > limits.max_body_bytes:
                return 413, _error(f"body larger than {limits.max_body_bytes} bytes")
            return 200, await endpoint(self, body)
        except BadRequest as exc:
            return 400, _error(str(exc))
        except TooLarge as exc:
            return 413, _error(str(exc))
        finally:
            self._in_flight -= 1

    def answer_from_memory(self, endpoint: str, body: bytes) -> bytes | None:
        """The answer to a body seen before whose decisions are all cached, without parsing
        it, or None. Called by the HTTP protocol (sidecar/http.py) before any ASGI work; the
        decision log wants every body parsed, so with it on the OPA endpoints answer nothing
        here (the compact endpoint parses its bodies anyway, and logs them)."""
        if self.decision_log is not None and endpoint not in compact.FROM_MEMORY:
            return None
        start = time.perf_counter()
        answer = FROM_MEMORY[endpoint](self, body)
        if answer is not None:
            self.stats.observe(endpoint, 200, time.perf_counter() - start)
        return answer

    def _allow_from_memory(self, body: bytes) -> bytes | None:
        bare, key = self._allow_keys.find(body)
        allowed = None if key is None else self.answers.cached_allowed(key)
        if key is None or allowed is None:
            return self._allow_now(body, bare)
        stats = self.stats
        stats.cache["hit"] += 1
        stats.decisions[key[2], "allow" if allowed else "deny"] += 1
        return TRUE if allowed else FALSE

    def _allow_now(self, body: bytes, bare: bytes | None) -> bytes | None:
        """A body not answered from memory, decided at once when that needs no word from the
        PDP (`Answers.allowed_now`): no ASGI cycle, task or messages, which cost more than the
        decision (a body never seen before is the common case for them). Only a worker without
        the decision log answers here (`answer_from_memory`), so no Decision's reason is
        needed. A body with a fast key is not decoded (`resource_names`). None leaves the
        body to `_allow`: a bad body's 400, a user whose view must be fetched."""
        answers = self.answers
        try:
            document = parse(body)
            key = single_key(document)
            self._allow_keys.remember(bare, key)
            allowed = None if key is None else answers.cached_allowed(key)
            if allowed is not None:  # a new body with a known key (other columns, ...)
                assert key is not None  # an answer comes from the cache by its key
                outcome, operation = "hit", key[2]
            elif key is not None and (names := resource_names(key)) is not None:
                allowed = answers.allowed_now(key, names)
                if allowed is None:
                    return None
                outcome, operation = "miss", key[2]
            else:
                request = _decode(document, batch=False, masks=False).request()
                decision = answers.decided(request, key)
                if decision is None:
                    return None
                allowed, outcome, operation = decision.allowed, "miss", request.operation
        except BadRequest:
            return None
        stats = self.stats
        stats.cache[outcome] += 1
        stats.decisions[operation, "allow" if allowed else "deny"] += 1
        return TRUE if allowed else FALSE

    def _batch_from_memory(self, body: bytes) -> bytes | None:
        bare, known = self._batch_keys.find(body)
        if bare is None or known is None:
            return self._batch_now(body, bare)
        held = self.answers.cached_batch(bare)
        if held is None:
            found = self._cached_batch(known)
            if found is None:
                return None
            operation, indices, asked = found
            held = (orjson.dumps({"result": indices}), operation, len(indices), asked)
            self.answers.remember_batch(bare, held)
        answer, operation, allowed, asked = held
        self.stats.decisions[operation, "allow"] += allowed
        self.stats.decisions[operation, "deny"] += asked - allowed
        return answer

    def _batch_now(self, body: bytes, bare: bytes | None) -> bytes | None:
        """A new FilterTables body answered at once from the user's cached view
        (`_readable_indices`), without an ASGI cycle; None leaves it to `_batch` (a bad body's
        400 or 413, a large one that takes turns, a user whose view must be fetched, any other
        operation)."""
        if len(body) > FROZEN_BODY_BYTES:
            return None
        try:
            document = parse(body)
        except BadRequest:
            return None
        keys = batch_keys(document)
        if not keys or len(keys) > min(MEMO_ITEMS, http.LIMITS.max_batch_items):
            return None
        allowed = self._readable_indices(keys)
        if allowed is None:
            return None
        operation = keys[0][2]  # type: ignore[index]  # _readable_indices checked every key
        self._batch_keys.remember(bare, _batch_memo(document, operation, keys))
        self.stats.decisions[operation, "allow"] += len(allowed)
        self.stats.decisions[operation, "deny"] += len(keys) - len(allowed)
        return orjson.dumps({"result": allowed})

    def _readable_indices(self, keys: Sequence[Key | None]) -> list[int] | None:
        """The indices of the tables a FilterTables batch (its items' keys, `batch_keys`) lets
        the user read, from the user's cached view by set lookups (`Answers.readable`), or None:
        another operation, an item the full decoder would refuse or decode otherwise
        (`table_keys`), or the view not at hand."""
        if not table_keys(keys):
            return None
        first = keys[0]
        assert first is not None  # `table_keys` says so
        reads = self.answers.readable(self.answers.identity(first[0], first[1]))
        return None if reads is None else reads.indices(keys)  # type: ignore[arg-type]

    def _row_filters_from_memory(self, body: bytes) -> bytes | None:
        return self._data_answer_from_memory(body, self._row_filter_keys)

    def _mask_from_memory(self, body: bytes) -> bytes | None:
        return self._data_answer_from_memory(body, self._mask_keys)

    def _batch_masks_from_memory(self, body: bytes) -> bytes | None:
        return self._data_answer_from_memory(body, self._batch_mask_keys)

    def _data_answer_from_memory(self, body: bytes, known: BodyKeys) -> bytes | None:
        key = known.find(body)[1]
        return None if key is None else self.answers.cached_answer(key)

    async def _allow(self, body: bytes) -> bytes:
        answers = self.answers
        stats = self.stats
        bare, key = self._allow_keys.find(body)
        decision = None if key is None else answers.cached(key)
        document = None  # a body seen before is not parsed, unless the decision log wants it
        if decision is None:
            document = parse(body)
            key = single_key(document)
            self._allow_keys.remember(bare, key)
            decision = None if key is None else answers.cached(key)
        if decision is not None:
            assert key is not None  # a decision comes from the cache by its key
            stats.cache["hit"] += 1
            operation = key[2]
        else:
            stats.cache["miss"] += 1
            call = _decode(document, batch=False, masks=False)
            decision = await answers.decide(call.request(), key)
            operation = call.operation
        allowed = decision.allowed
        stats.decisions[operation, "allow" if allowed else "deny"] += 1
        if self.decision_log is not None:
            self.decision_log.record("allow", document or parse(body), allowed, allowed, decision)
        return TRUE if allowed else FALSE

    async def _batch(self, body: bytes) -> bytes:
        bare, known = self._batch_keys.find(body)
        found = None if known is None else self._cached_batch(known)
        document = None  # a body seen before is not parsed, unless the decision log wants it
        if found is not None:
            operation, allowed, asked = found
        else:
            async with self._turns.take() as turn:
                # a large body's document lives as long as the batch: out of the collector's way
                large = len(body) > FROZEN_BODY_BYTES
                document = made_frozen(parse, body) if large else parse(body)
                operation, allowed, asked = await self._batch_answer(document, turn)
            if known is None:
                self._batch_keys.remember(bare, _batch_memo(document, operation))
        self.stats.decisions[operation, "allow"] += len(allowed)
        self.stats.decisions[operation, "deny"] += asked - len(allowed)
        if self.decision_log is not None:
            everything = len(allowed) == asked
            self.decision_log.record("batch", document or parse(body), allowed, everything, None)
        return orjson.dumps({"result": allowed})

    async def filter_batch(self, document: Any) -> tuple[str, list[int], int]:
        """`_batch_answer` of a parsed batch, taking turns with the other batches (the compact
        endpoint's filter asks)."""
        async with self._turns.take() as turn:
            return await self._batch_answer(document, turn)

    async def filter_tables(self, document: Any, keys: Sequence[Key]) -> tuple[str, list[int], int]:
        """`filter_batch` of a FilterTables batch whose `keys` are proven (`table_keys`), decided
        by set lookups on the user's view (`Answers.readable`) after fetching it if need be, a
        slice at a time, with no Decision or Request per table; each slice on the view held
        when it is decided (a revision may switch between two). From where the view is not
        at hand at the current revision (the PDP away, the view dropped by a switch), as
        `filter_batch`."""
        answers = self.answers
        identity = answers.identity(keys[0][0], keys[0][1])
        async with self._turns.take() as turn:
            if not answers.has_view(identity):  # fetched out of turn
                with contextlib.suppress(PdpUnavailable):  # decided below: denied, with a warning
                    await turn.outside(answers.view(identity))
            allowed: list[int] = []
            for start in range(0, len(keys), TABLE_SLICE):
                if start:
                    await turn.pause()
                reads = answers.readable(identity)
                if reads is None:
                    items = document["input"]["action"]["filterResources"][start:]
                    rest = await self._batch_answer(_with_items(document, items), turn)
                    allowed.extend(start + i for i in rest[1])
                    break
                part = reads.indices(keys[start : start + TABLE_SLICE])
                allowed.extend(start + i for i in part)
            return "FilterTables", allowed, len(keys)

    async def _batch_answer(self, document: Any, turn: Turn) -> tuple[str, list[int], int]:
        """(operation, the indices allowed, how many were asked about) of a parsed batch."""
        items = _check_batch_size(document)
        if items is None or len(items) <= CHUNK_ITEMS or _operation(document) == "FilterColumns":
            allowed = await self._filter(document, turn)
        else:
            # A large batch is answered a chunk at a time, taking turns with other batches and
            # letting other checks in between (sidecar/turns.py), so that one huge listing does
            # not stall the checks of every other query here.
            allowed = []
            for start in range(0, len(items), CHUNK_ITEMS):
                await turn.pause()
                part = _with_items(document, items[start : start + CHUNK_ITEMS])
                allowed.extend(start + i for i in await self._filter(part, turn))
        operation, asked = _operation(document), len(items or ())
        if operation == "FilterColumns":
            asked = len(allowed) or asked  # all columns or none
        return operation, allowed, asked

    def _cached_batch(self, known: Key) -> tuple[str, list[int], int] | None:
        """What `_batch_answer` gives for a body remembered as `known` (see `_batch_memo`),
        if every decision it needs is cached."""
        if known[0] == "columns":  # FilterColumns: all of its columns or none
            _, key, columns = known
            decision = self.answers.cached(key)
            if decision is None:
                return None
            if decision.allowed:
                return key[2], list(range(columns)), columns
            return key[2], [], 1  # as counted by `_batch_answer`: one table denied
        keys = known[1]
        allowed = self._readable_indices(keys)
        if allowed is None:
            allowed = self._cached_indices(keys)
        return None if allowed is None else (keys[0][2], allowed, len(keys))

    def _cached_indices(self, keys: Sequence[Key | None]) -> list[int] | None:
        """The indices of the allowed keys, or None unless every decision is cached."""
        cached, allowed = self.answers.cached, []
        for i, key in enumerate(keys):
            if key is None or (decision := cached(key)) is None:
                return None
            if decision.allowed:
                allowed.append(i)
        return allowed

    async def _filter(self, document: Any, turn: Turn) -> list[int]:
        """The indices of the batch's filterResources the user may see."""
        answers = self.answers
        keys = batch_keys(document)
        # FilterColumns answers depend on its columns, which the keys leave out; an empty batch
        # has no key that proves the body valid. Both take the full decoder.
        if keys and _operation(document) != "FilterColumns":
            allowed = self._readable_indices(keys)
            if allowed is None:
                allowed = self._cached_indices(keys)
            if allowed is not None:
                return allowed
        call = _decode(document, batch=True, masks=False)
        items = call.items or ()
        if items and needs_grants(call.operation) and not answers.has_view(call.identity):
            # deciding would ask the PDP for the user's view: that waiting is done out of turn
            with contextlib.suppress(PdpUnavailable):  # decided below: denied, with a warning
                await turn.outside(answers.view(call.identity))
        keys = keys or [None] * len(items)
        if call.operation == "FilterColumns":
            if not items or not call.columns:
                return []
            decision = await answers.decide(call.request(items[0]), keys[0])
            return list(range(len(call.columns))) if decision.allowed else []
        decisions = await answers.decide_all([call.request(item) for item in items], keys)
        return [i for i, decision in enumerate(decisions) if decision.allowed]

    async def _row_filters(self, body: bytes) -> bytes:
        answers = self.answers
        document, key, answer = self._data_answer(
            body, self._row_filter_keys, datapolicy.row_filters_key
        )
        if answer is not None:
            return answer
        call = _decode(document, batch=False, operation="GetRowFilters")
        if not isinstance(call.resource, TableRef):
            raise BadRequest("input.action.resource.table: GetRowFilters needs a table")
        return await answer_row_filters(answers, call.identity, call.resource.key, key)

    async def _column_mask(self, body: bytes) -> bytes:
        return await self._masks(body, self._mask_keys, batch=False)

    async def _batch_column_masks(self, body: bytes) -> bytes:
        return await self._masks(body, self._batch_mask_keys, batch=True)

    async def _masks(self, body: bytes, known: BodyKeys, batch: bool) -> bytes:
        answers = self.answers
        key_of = _batch_masks_key if batch else _mask_key
        document, key, answer = self._data_answer(body, known, key_of)
        if answer is not None:
            return answer
        if batch:
            _check_batch_size(document)
        call = _decode(document, batch=batch, operation="GetColumnMask")
        if batch and not call.items:
            return EMPTY_LIST
        return await answer_masks(answers, call.identity, document, batch, key)

    def _data_answer(
        self, body: bytes, known: BodyKeys, key_of: Callable[[Any], Key | None]
    ) -> tuple[Any, Key | None, bytes | None]:
        """(the parsed body or None, its key, the cached answer or None) of a data-policy
        endpoint: a body seen before is answered without parsing it."""
        cached = self.answers.cached_answer
        bare, key = known.find(body)
        if key is not None and (answer := cached(key)) is not None:
            return None, key, answer
        document = parse(body)
        key = key_of(document)
        known.remember(bare, key)
        return document, key, None if key is None else cached(key)

    def _live(self) -> tuple[int, bytes]:
        return 200, b'{"status":"live"}'

    def _ready(self) -> tuple[int, bytes]:
        """Ready while table checks can be answered: a revision is held (from the PDP, within
        the staleness bound). Identity checks work even when not ready."""
        answers = self.answers
        if answers.revision is None:
            return 503, orjson.dumps(
                {"status": "not ready", "reason": "no policy revision from the PDP"}
            )
        return 200, orjson.dumps({"status": "ready", "revision": answers.revision})

    def _metrics(self) -> tuple[int, bytes]:
        self.stats.save(self._metrics_dir)  # this worker's counters up to now
        return 200, render(self._metrics_dir)

    def _health_answer(self) -> tuple[int, bytes]:
        return 200, self._health()

    def _gauges(self) -> dict[str, Any]:
        answers, now = self.answers, time.monotonic()
        sizes = answers.sizes()
        return {
            "worker": os.getpid(),
            "revision": answers.revision,
            "revision_age_seconds": now - self._revision_since,
            "pdp_connected": int(answers.lost_since is None),
            "pdp_silence_seconds": now - answers.heard,
            "cached_users": sizes["users"],
            "cached_decisions": sizes["decisions"],
            "open_connections": http.GATE.open,
            "max_connections": http.LIMITS.max_connections,
            "gc_frozen_objects": self._frozen.count,  # at the last settle (pdp/collector.py)
        }

    async def _save_stats(self) -> None:
        revision = None
        while True:
            if self.answers.revision != revision:
                revision, self._revision_since = self.answers.revision, time.monotonic()
            # A new revision is frozen like anything else; no settle for it: the revision
            # dropped is freed by reference counting (a settle right after one found nothing
            # to collect, and held the worker 0.2 s at 100,000 tables: benchmarks/RESULTS.md).
            self._frozen.tick(self._turns.in_progress > 0, self.stats.responses())
            with contextlib.suppress(OSError):
                self.stats.save(self._metrics_dir)
            await asyncio.sleep(1)

    def _health(self) -> bytes:
        return orjson.dumps(health(self.answers, self._client, self._watched, self._state))


class SidecarApp:
    """The ASGI application uvicorn runs: its lifespan starts and stops the `Sidecar`, which
    answers every request (uvicorn sends none before the startup is complete)."""

    def __init__(self, config: SidecarConfig) -> None:
        self.config = config
        self.sidecar: Sidecar | None = None
        http.configure(config.http)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if self.sidecar is None:
                await _send(send, 503, _error("the sidecar is starting"), CONTENT_TYPE)
            else:
                await self.sidecar.serve(scope, receive, send)

    def answer_from_memory(self, endpoint: str, body: bytes) -> bytes | None:
        """`Sidecar.answer_from_memory` (sidecar/http.py calls it before any ASGI work)."""
        sidecar = self.sidecar
        return None if sidecar is None else sidecar.answer_from_memory(endpoint, body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.sidecar = await Sidecar.start(self.config)
                except Exception as exc:
                    log.error("sidecar cannot start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.sidecar is not None:
                    await self.sidecar.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send(send: Send, status: int, body: bytes, kind: tuple[bytes, bytes]) -> None:
    # With a content-length, uvicorn sends the body as is instead of chunk-framing it.
    headers = [kind, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


MONITORING: dict[str, Callable[[Sidecar], tuple[int, bytes]]] = {
    "/health": Sidecar._health_answer,
    "/health/live": Sidecar._live,
    "/health/ready": Sidecar._ready,
    "/metrics": Sidecar._metrics,
}
ENDPOINTS: dict[str, Callable[[Sidecar, bytes], Awaitable[bytes]]] = {
    "allow": Sidecar._allow,
    "batch": Sidecar._batch,
    "rowFilters": Sidecar._row_filters,
    "columnMask": Sidecar._column_mask,
    "batchColumnMasks": Sidecar._batch_column_masks,
}
FROM_MEMORY: dict[str, Callable[[Sidecar, bytes], bytes | None]] = {
    "allow": Sidecar._allow_from_memory,
    "batch": Sidecar._batch_from_memory,
    "rowFilters": Sidecar._row_filters_from_memory,
    "columnMask": Sidecar._mask_from_memory,
    "batchColumnMasks": Sidecar._batch_masks_from_memory,
    **compact.FROM_MEMORY,
}
_DATA_POLICY_OPERATIONS = {"GetRowFilters", "GetColumnMask"}


def _decode(document: Any, batch: bool, masks: bool = True, operation: str | None = None) -> Call:
    """Decode a body after checking that it belongs on this endpoint, so that a misrouted body
    is told so rather than what its resource lacks."""
    request = document.get("input") if isinstance(document, dict) else None
    action = request.get("action") if isinstance(request, dict) else None
    if isinstance(action, dict) and isinstance(found := action.get("operation"), str):
        items = action.get("filterResources")
        if batch and items is None:
            raise BadRequest("input.action.filterResources: required by this endpoint")
        if not batch and items is not None:
            raise BadRequest("input.action.filterResources: not accepted by this endpoint")
        if operation is not None and found != operation:
            raise BadRequest(
                f"input.action.operation: this endpoint serves {operation}, got {found!r}"
            )
        if not masks and found in _DATA_POLICY_OPERATIONS:
            raise BadRequest(f"input.action.operation: {found} belongs on its own endpoint")
    return decode_document(document)


CHUNK_ITEMS = 64  # filterResources items decided between two looks at the clock
TABLE_SLICE = 512  # tables looked up by `Readable.indices` between two looks at the clock
MEMO_ITEMS = 500  # batches up to this size are remembered by body (see _batch_memo)
FROZEN_BODY_BYTES = 1024 * 1024  # batch bodies parsed straight into frozen objects (~15,000 items)


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _rest_of_body(receive: Receive, first: bytes, limit: int) -> bytes | None:
    """The body of a request that arrives in several messages, or None past `limit` bytes
    (a chunked body has no length up front)."""
    buffer, more = bytearray(first), True
    while more:
        if len(buffer) > limit:
            return None
        message = await receive()
        buffer += message.get("body", b"")
        more = bool(message.get("more_body"))
    return bytes(buffer)


def _mask_key(document: Any) -> Key | None:
    return datapolicy.masks_key(document, batch=False)


def _batch_masks_key(document: Any) -> Key | None:
    return datapolicy.masks_key(document, batch=True)


def _batch_memo(document: Any, operation: str, keys: list[Key | None] | None = None) -> Key | None:
    """How `_cached_batch` finds the answer to a batch body answered once (and so valid):
    ("columns", the table's key, how many columns) for FilterColumns, ("items", every item's
    key) for a batch of at most MEMO_ITEMS items that all have keys, else None. `keys`: the
    body's `batch_keys`, when they are at hand."""
    items = _filter_resources(document)
    if items is None or len(items) > MEMO_ITEMS:
        return None
    keys = batch_keys(document) if keys is None else keys
    if not keys or None in keys:
        return None
    if operation == "FilterColumns":
        columns = document["input"]["action"]["filterResources"][0]["table"].get("columns", [])
        return ("columns", keys[0], len(columns)) if len(keys) == 1 and columns else None
    return ("items", tuple(keys))


def _check_batch_size(document: Any) -> list[Any] | None:
    """The batch's filterResources; TooLarge beyond `http.maxBatchItems`."""
    items = _filter_resources(document)
    if items is not None:
        check_items(items, "input.action.filterResources")
    return items


def _filter_resources(document: Any) -> list[Any] | None:
    try:
        items = document["input"]["action"]["filterResources"]
    except (KeyError, TypeError):
        return None
    return items if isinstance(items, list) else None


def _operation(document: Any) -> Any:
    return document["input"]["action"].get("operation")


def _with_items(document: Any, items: list[Any]) -> dict[str, Any]:
    """The same body with a slice of its filterResources (shallow copies, nothing re-parsed)."""
    request = document["input"]
    return {"input": {**request, "action": {**request["action"], "filterResources": items}}}


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def from_env() -> SidecarApp:
    """App factory for uvicorn workers: the configuration path comes from SIDECAR_CONFIG."""
    return SidecarApp(load_sidecar_config(Path(os.environ["SIDECAR_CONFIG"])))
