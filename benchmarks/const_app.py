"""The throughput ceiling: a raw ASGI app that reads the whole body and answers a constant.

Served exactly like the sidecar (uvicorn, httptools, uvloop, 2 workers, no access log), it
measures what the HTTP stack alone costs on this machine, so the sidecar can be judged as a
fraction of it in the same run (performance-anchors.md section 5):

    uvicorn const_app:app --app-dir benchmarks --workers 2 --loop uvloop --http httptools \
        --no-access-log --port 18182
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

ANSWER = b'{"result":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
