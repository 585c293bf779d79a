"""The HTTP front end: a raw ASGI app (no framework on the hot path, pre-encoded answers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from pdp.auth import AsyncTokenSource
from pdp.config.load import load_cluster
from pdp.config.watch import Watched
from pdp.core.model import TableRef
from pdp.wire import datapolicy
from pdp.wire.trino import BadRequest, Call, batch_keys, decode_document, parse, single_key
from sidecar.answers import Answers
from sidecar.config import SidecarConfig, load_sidecar_config
from sidecar.datapolicies import answer_masks, answer_row_filters
from sidecar.pdp_client import PdpClient

log = logging.getLogger(__name__)

TRUE, FALSE = b'{"result":true}', b'{"result":false}'
EMPTY_LIST, NULL = b'{"result":[]}', b'{"result":null}'
MAX_BODY = 64 * 1024 * 1024
PREFIX = "/v1/data/trino/"
CONTENT_TYPE = (b"content-type", b"application/json")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Sidecar:
    def __init__(self, config: SidecarConfig) -> None:
        self.config = config
        self.answers: Answers | None = None
        self._tasks: list[asyncio.Task] = []
        self._client: PdpClient | None = None

    async def startup(self) -> None:
        config = self.config
        files = config.properties_file, config.mapping_file
        cluster = Watched("cluster settings", [p for p in files if p], lambda: load_cluster(*files))
        tokens = AsyncTokenSource(config.pdp_auth) if config.pdp_auth else None
        self._client = PdpClient(config.pdp_target, config.pdp_timeout, tokens, config.pdp_tls)
        answers = Answers(
            lambda: cluster.current,
            self._client,
            config.user_cache,
            config.decision_cache,
            config.max_stale,
        )
        cluster.on_change = lambda _: answers.reset(answers.revision)
        self.answers = answers
        self._tasks = [
            asyncio.create_task(answers.watch()),
            asyncio.create_task(cluster.run(config.reload_interval)),
        ]

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.close()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body = await self._respond(scope, receive)
        # With a content-length, uvicorn sends the body as is instead of chunk-framing it.
        headers = [CONTENT_TYPE, (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _respond(self, scope: dict[str, Any], receive: Receive) -> tuple[int, bytes]:
        path = scope["path"]
        if scope["method"] == "GET" and path == "/health":
            return 200, self._health()
        if not path.startswith(PREFIX):
            return 404, _error(f"no such endpoint {path!r}")
        endpoint = ENDPOINTS.get(path[len(PREFIX) :])
        if endpoint is None:
            return 404, _error(f"no such endpoint {path!r}")
        if scope["method"] != "POST":
            return 405, _error("use POST")
        message = await receive()
        body = message.get("body", b"")
        if message.get("more_body"):  # Trino's bodies mostly arrive in one piece
            buffer = bytearray(body)
            while True:
                if len(buffer) > MAX_BODY:
                    return 413, _error(f"body larger than {MAX_BODY} bytes")
                message = await receive()
                buffer += message.get("body", b"")
                if not message.get("more_body"):
                    break
            body = bytes(buffer)
        if len(body) > MAX_BODY:
            return 413, _error(f"body larger than {MAX_BODY} bytes")
        try:
            return 200, await endpoint(self, parse(body))
        except BadRequest as exc:
            return 400, _error(str(exc))

    async def _allow(self, document: Any) -> bytes:
        answers: Answers = self.answers  # type: ignore[assignment]
        key = single_key(document)
        if key is not None and (decision := answers.cached(key)) is not None:
            return TRUE if decision.allowed else FALSE
        call = decode_document(document)
        _expect(call, batch=False, masks=False)
        decision = await answers.decide(call.request(), key)
        return TRUE if decision.allowed else FALSE

    async def _batch(self, document: Any) -> bytes:
        answers: Answers = self.answers  # type: ignore[assignment]
        keys = batch_keys(document)
        # FilterColumns answers depend on its columns, which the keys leave out; an empty batch
        # has no key that proves the body valid. Both take the full decoder.
        if keys and document["input"]["action"]["operation"] != "FilterColumns":
            cached, allowed = answers.cached, []
            for i, key in enumerate(keys):
                if key is None or (decision := cached(key)) is None:
                    break
                if decision.allowed:
                    allowed.append(i)
            else:
                return orjson.dumps({"result": allowed})
        call = decode_document(document)
        _expect(call, batch=True, masks=False)
        items = call.items or ()
        keys = keys or [None] * len(items)
        if call.operation == "FilterColumns":
            if not items or not call.columns:
                return EMPTY_LIST
            decision = await answers.decide(call.request(items[0]), keys[0])
            return orjson.dumps(
                {"result": list(range(len(call.columns))) if decision.allowed else []}
            )
        allowed = [
            i
            for i, item in enumerate(items)
            if (await answers.decide(call.request(item), keys[i])).allowed
        ]
        return orjson.dumps({"result": allowed})

    async def _row_filters(self, document: Any) -> bytes:
        answers: Answers = self.answers  # type: ignore[assignment]
        key = datapolicy.row_filters_key(document)
        if key is not None and (answer := answers.cached_answer(key)) is not None:
            return answer
        call = decode_document(document)
        _expect(call, batch=False, operation="GetRowFilters")
        if not isinstance(call.resource, TableRef):
            raise BadRequest("input.action.resource.table: GetRowFilters needs a table")
        return await answer_row_filters(answers, call.identity, call.resource.key, key)

    async def _column_mask(self, document: Any) -> bytes:
        return await self._masks(document, batch=False)

    async def _batch_column_masks(self, document: Any) -> bytes:
        return await self._masks(document, batch=True)

    async def _masks(self, document: Any, batch: bool) -> bytes:
        answers: Answers = self.answers  # type: ignore[assignment]
        key = datapolicy.masks_key(document, batch)
        if key is not None and (answer := answers.cached_answer(key)) is not None:
            return answer
        call = decode_document(document)
        _expect(call, batch=batch, operation="GetColumnMask")
        if batch and not call.items:
            return EMPTY_LIST
        return await answer_masks(answers, call.identity, document, batch, key)

    def _health(self) -> bytes:
        answers = self.answers
        return orjson.dumps(
            {
                "status": "ok",
                "revision": answers.revision if answers else None,
                "pdp": "connected" if answers and answers.lost_since is None else "disconnected",
                "cache": answers.sizes() if answers else {},
            }
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("sidecar cannot start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


ENDPOINTS: dict[str, Callable[[Sidecar, Any], Awaitable[bytes]]] = {
    "allow": Sidecar._allow,
    "batch": Sidecar._batch,
    "rowFilters": Sidecar._row_filters,
    "columnMask": Sidecar._column_mask,
    "batchColumnMasks": Sidecar._batch_column_masks,
}
_DATA_POLICY_OPERATIONS = {"GetRowFilters", "GetColumnMask"}


def _expect(call: Call, batch: bool, masks: bool = True, operation: str | None = None) -> None:
    if batch and call.items is None:
        raise BadRequest("input.action.filterResources: required by this endpoint")
    if not batch and call.items is not None:
        raise BadRequest("input.action.filterResources: not accepted by this endpoint")
    if operation is not None and call.operation != operation:
        raise BadRequest(
            f"input.action.operation: this endpoint serves {operation}, got {call.operation!r}"
        )
    if not masks and call.operation in _DATA_POLICY_OPERATIONS:
        raise BadRequest(f"input.action.operation: {call.operation} belongs on its own endpoint")


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def from_env() -> Sidecar:
    """App factory for uvicorn workers: the configuration path comes from SIDECAR_CONFIG."""
    return Sidecar(load_sidecar_config(Path(os.environ["SIDECAR_CONFIG"])))
