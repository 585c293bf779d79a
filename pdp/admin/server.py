"""Serving the admin API on the PDP's own event loop."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from pdp.web import serve_asgi

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def serving(app: FastAPI, listen: str) -> AsyncIterator[int]:
    """Serve `app` on `listen` (host:port, port 0 picks one); yields the bound port."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    async with serve_asgi(app, host, int(port)) as bound:
        log.info("admin API on http://%s:%s (OpenAPI at /openapi.json)", host, bound)
        yield bound
