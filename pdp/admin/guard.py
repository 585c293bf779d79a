"""Before the admin API's endpoints: the error shape every answer uses, and the guard that
refuses a NUL byte (400), an oversized body (413) or a body that is not JSON (415) before
routing, and that logs a store outage once (`Outage`)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024


def error_body(
    code: str, message: str, field: str | None = None, value: Any = None, **extra: Any
) -> dict[str, Any]:
    if value is not None and not isinstance(value, str | int | float | bool | list | dict):
        value = str(value)
    return {"error": {"code": code, "message": message, "field": field, "value": value, **extra}}


def error(status: int, code: str, message: str, **fields: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(code, message, **fields), status_code=status, headers=headers)


class Outage:
    """One ERROR when the store stops answering the admin API, one INFO when it answers again
    (not one line per request: a busy API would flood the log and page someone per call)."""

    def __init__(self) -> None:
        self.down = False

    def failed(self, error: Exception) -> None:
        if not self.down:
            self.down = True
            log.error("store unreachable, the admin API answers 503 until it returns: %s", error)

    def answered(self) -> None:
        if self.down:
            self.down = False
            log.info("store reachable again: the admin API answers again")


# the routes whose {path} is an object path: segments percent-encoded, names may hold / and %
_OBJECT_ROUTES = (
    "/data/object/",
    "/data/settings/",
    "/data/permission/",
    "/data/crawl/",
)


def with_object_path(scope: Scope) -> Scope:
    """The server decodes the whole path before routing, so a name's `%2F` would split it into
    two segments (and its `%25` be decoded twice). For an object path, decode each segment of
    the raw path but keep `/` and `%` escaped: `ObjectPath.parse_url` decodes them, once."""
    raw = scope.get("raw_path")
    if not raw or not scope["path"].startswith(_OBJECT_ROUTES):
        return scope
    try:
        segments = [unquote_to_bytes(segment).decode("utf-8") for segment in raw.split(b"/")]
    except UnicodeDecodeError:
        return scope  # not UTF-8: left to the route's own error
    kept = (s.replace("%", "%25").replace("/", "%2F") for s in segments)
    return {**scope, "path": "/".join(kept)}


class Guard:
    """Before routing: a path or query with a NUL byte is 400 (no store ever sees it), a body
    above `max_body_bytes` is 413, whether it announces its length or not. After: a request
    that reached the store ends an outage."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.limit = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = with_object_path(scope)
        query = unquote(scope.get("query_string", b"").decode("latin-1"))
        if "\x00" in scope["path"] or "\x00" in query:
            where = "path" if "\x00" in scope["path"] else "query"
            answer = error(400, "invalid_input", f"the {where} holds a NUL byte", field=where)
            await answer(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._too_large(scope, receive, send)
            return
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        has_body = (length is not None and length != "0") or "transfer-encoding" in headers
        if has_body and not (kind == "application/json" or kind.endswith("+json")):
            got = f"Content-Type {kind!r}" if kind else "no Content-Type"
            message = f"the body must be JSON, sent with Content-Type: application/json ({got})"
            answer = error(415, "unsupported_media_type", message, field="Content-Type")
            await answer(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge(self.limit)
            return message

        status = 0

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, counted, watched)
        outage: Outage | None = (
            getattr(scope["app"].state, "outage", None) if "app" in scope else None
        )
        if outage is not None and status < 500 and scope["path"].startswith(_STORE_PATHS):
            outage.answered()

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = TooLarge(self.limit)
        await error(413, "too_large", exc.detail, field="body")(scope, receive, send)


class TooLarge(StarletteHTTPException):
    """Raised while the body is read (FastAPI passes HTTP exceptions through as they are)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes (admin.maxBodyBytes)")


_STORE_PATHS = ("/data", "/jobs", "/requests")
