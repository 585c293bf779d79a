"""The admin API's error vocabulary: which exception answers which status and code, as a table.

Every answer has the shape of `pdp.admin.schema.ErrorBody` (built by `guard.error`). A row
maps an exception class (subclasses included: the most specific row wins, as Starlette looks
handlers up along the exception's MRO) to a status, a code and the fields the body carries.
FastAPI's validation errors and unknown routes, whose status or code depend on the request,
have a handler each below the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pdp.admin.guard import TooLarge, error, error_body
from pdp.admin.schema import CheckOut, ErrorBody
from pdp.auth.errors import PermissionDenied, Unauthenticated
from pdp.control import Forbidden, JobRunning, ValidationFailed
from pdp.control.legacy import LegacyRetired
from pdp.control.upgrade import WrongStep
from pdp.objects.errors import Conflict, NotFound, ObjectError
from pdp.store import STORE_UNAVAILABLE

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (400, "invalid input: `field` names what was wrong (`invalid_input`, `invalid_json`)"),
        (401, "no valid bearer token"),
        (403, "the caller lacks `permission`"),
        (404, "no such connection, object, job or request"),
        (409, "a conflict, or a sync running (`jobId`)"),
        (413, "the body is larger than admin.maxBodyBytes"),
        (415, "the body is not JSON"),
        (503, "the store does not answer"),
    )
}

STORE_DOWN = "the store is unreachable; the PDP keeps deciding on its last good snapshot"


@dataclass(frozen=True, slots=True)
class ErrorRule:
    catches: type[Exception] | tuple[type[Exception], ...]
    status: int
    code: str
    # the message and the body's fields (field, value and extras) for one exception
    body: Callable[[Any], tuple[str, Mapping[str, Any]]]
    outage: bool = False  # the store does not answer: logged once per outage (`Outage`)


def _where(exc: ObjectError) -> dict[str, Any]:
    return {"field": exc.field, "value": exc.value}


def _named(exc: ObjectError) -> tuple[str, Mapping[str, Any]]:
    return exc.message, _where(exc)


def _refused(exc: ValidationFailed) -> tuple[str, Mapping[str, Any]]:
    failed = next(c for c in exc.checks if not c.ok)
    checks = [CheckOut.of(c).dump() for c in exc.checks]
    message = f"the platform refused the connection details: {failed.name}: {failed.detail}"
    return message, {"field": "connection", "value": failed.name, "checks": checks}


ERRORS: tuple[ErrorRule, ...] = (
    ErrorRule(
        LegacyRetired,
        400,
        "legacy_retired",
        lambda e: (e.message, {**_where(e), "replacement": e.replacement}),
    ),
    ErrorRule(
        WrongStep,
        409,
        "conflict",
        lambda e: (
            e.message,
            {**_where(e), "state": e.state.value, "allowed": list(e.allowed)},
        ),
    ),
    ErrorRule(
        JobRunning, 409, "sync_running", lambda e: (e.message, {**_where(e), "jobId": e.job_id})
    ),
    ErrorRule(NotFound, 404, "not_found", _named),
    ErrorRule(Conflict, 409, "conflict", _named),
    ErrorRule(ObjectError, 400, "invalid_input", _named),
    ErrorRule(ValidationFailed, 422, "validation_failed", _refused),
    ErrorRule(
        Forbidden,
        403,
        "forbidden",
        lambda e: (
            e.message,
            {"field": "permission", "value": e.value, "permission": e.permission},
        ),
    ),
    ErrorRule(
        Unauthenticated, 401, "unauthenticated", lambda e: (str(e), {"field": "Authorization"})
    ),
    ErrorRule(
        PermissionDenied,
        403,
        "forbidden",
        lambda e: (str(e), {"field": "Authorization", "permission": "scope"}),
    ),
    ErrorRule(
        STORE_UNAVAILABLE,
        503,
        "store_unavailable",
        lambda e: (STORE_DOWN, {"field": "store"}),
        outage=True,
    ),
)


def problem_body(exc: Exception) -> dict[str, Any]:
    """The body the table gives `exc` (the most specific row), for an answer that cannot
    change its status any more (an event stream under way); else an internal error."""
    for kind in type(exc).__mro__:
        for rule in ERRORS:
            if kind in (rule.catches if isinstance(rule.catches, tuple) else (rule.catches,)):
                message, fields = rule.body(exc)
                return error_body(rule.code, message, **fields)
    return error_body("internal", "the job could not be read")


def install_errors(app: FastAPI) -> None:
    for rule in ERRORS:
        catches = rule.catches if isinstance(rule.catches, tuple) else (rule.catches,)
        for exception in catches:
            app.add_exception_handler(exception, _handler(rule))
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]


def _handler(rule: ErrorRule) -> Callable[[Request, Exception], Any]:
    async def answer(request: Request, exc: Exception) -> JSONResponse:
        if rule.outage:
            request.app.state.outage.failed(exc)
        message, fields = rule.body(exc)
        return error(rule.status, rule.code, message, **fields)

    return answer


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = exc.errors()
    first = problems[0] if problems else {}
    if first.get("type") == "json_invalid":
        return error(400, "invalid_json", _json_problem(first, exc.body), field="body")
    location = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(location) or None
    value = first.get("input")
    message = f"{field}: {first.get('msg', 'invalid')}" if field else first.get("msg", "")
    details = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
            "message": e["msg"],
        }
        for e in problems
    ]
    return error(400, "invalid_input", message, field=field, value=value, details=details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    if isinstance(exc, TooLarge):
        return error(413, "too_large", str(exc.detail), field="body")
    if exc.status_code == 404:
        return error(
            404, code, f"no endpoint {request.url.path}", field="path", value=request.url.path
        )
    return error(exc.status_code, code, str(exc.detail), field="method", value=request.method)


def _json_problem(problem: Mapping[str, Any], document: Any) -> str:
    """`the body is not valid JSON: Expecting ',' delimiter at line 3, column 5`."""
    position = next((p for p in problem.get("loc", ()) if isinstance(p, int)), None)
    what = (problem.get("ctx") or {}).get("error") or "cannot parse it"
    if position is None or not isinstance(document, str | bytes):
        return f"the body is not valid JSON: {what}"
    text = document if isinstance(document, str) else document.decode("utf-8", "replace")
    before = text[:position]
    line, column = before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1
    return f"the body is not valid JSON: {what} at line {line}, column {column}"
