"""The PDP's monitoring endpoint (pdp.yaml `monitoring: {listen: host:port}`; absent: off):
`/metrics` for Prometheus, `/health/live` and `/health/ready`.

The PDP is one process, so prometheus-client's default registry counts directly."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from pdp.web import serve_asgi

log = logging.getLogger(__name__)

RPCS = Counter("pdp_grpc_requests", "gRPC calls answered, by method and status", ["method", "code"])
RPC_SECONDS = Histogram(
    "pdp_grpc_request_duration_seconds",
    "Time to answer a gRPC call, by method",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)
WATCHERS = Gauge("pdp_watch_streams", "Open WatchRevision streams (sidecars following)")
REVISION = Gauge("pdp_revision", "The revision served (value 1)", ["revision"])
REVISION_TIME = Gauge("pdp_revision_timestamp_seconds", "When the served revision was published")
GRANT_SYNC = Counter(
    "pdp_grant_sync_runs",
    "Grant sync runs per target, by outcome (clean, drift, failed, unreachable)",
    ["target", "outcome"],
)

T = TypeVar("T")


def measured(method: str) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Count and time a unary gRPC handler under `method`."""

    def wrap(handler: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(handler)
        async def run(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
            start, code = time.perf_counter(), "OK"
            try:
                return await handler(self, request, context)
            except Exception:
                code = (context.code() or grpc.StatusCode.UNKNOWN).name
                raise
            finally:
                RPCS.labels(method, code).inc()
                RPC_SECONDS.labels(method).observe(time.perf_counter() - start)

        return run

    return wrap


def streamed(handler: Callable[..., AsyncIterator[T]]) -> Callable[..., AsyncIterator[T]]:
    """Keep count of the open streams of a server-streaming handler."""

    @functools.wraps(handler)
    async def run(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[T]:
        WATCHERS.inc()
        try:
            async for item in handler(self, request, context):
                yield item
        finally:
            WATCHERS.dec()

    return run


def answered() -> int:
    """The gRPC calls answered so far, of every method and status."""
    return int(sum(s.value for m in RPCS.collect() for s in m.samples if s.name.endswith("_total")))


def revision_published(revision: str, previous: str | None) -> None:
    if previous is not None:
        REVISION.remove(previous)
    REVISION.labels(revision).set(1)
    REVISION_TIME.set(time.time())


@contextlib.asynccontextmanager
async def serving(
    listen: str,
    ready: Callable[[], str | None],
    degraded: Callable[[], str | None] = lambda: None,
) -> AsyncIterator[int]:
    """Serve the endpoint until the block ends; `ready` says why the PDP is not ready, or None;
    `degraded` why it serves on less than it should (ready all the same: it fails closed).
    Yields the bound port."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        kind = b"application/json"
        if path == "/metrics":
            status, body = 200, await asyncio.to_thread(generate_latest)
            kind = CONTENT_TYPE_LATEST.encode()
        elif path == "/health/live":
            status, body = 200, b'{"status":"live"}'
        elif path == "/health/ready":
            reason, weak = ready(), degraded()
            status = 200 if reason is None else 503
            if reason is not None:
                body = orjson.dumps({"status": "not ready", "reason": reason})
            elif weak is not None:
                body = orjson.dumps({"status": "ready", "degraded": weak})
            else:
                body = b'{"status":"ready"}'
        else:
            status, body = 404, orjson.dumps({"error": f"no such endpoint {path!r}"})
        headers = [(b"content-type", kind), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    host, _, port = listen.rpartition(":")
    async with serve_asgi(app, host, int(port)) as bound:
        log.info(
            "PDP monitoring on http://%s:%d (/metrics, /health/live, /health/ready)", host, bound
        )
        yield bound


def grant_sync_outcome(target: str, outcome: str) -> None:
    GRANT_SYNC.labels(target, outcome).inc()
