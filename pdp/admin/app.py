"""The admin API: FastAPI over the control plane (spec §4), OpenAPI at /openapi.json.

Every error answers one JSON shape, FastAPI's own validation errors and unknown routes included:

    {"error": {"code": "invalid_input", "message": "...", "field": "isActive", "value": "yes"}}

403 bodies add `permission` (what the caller lacks), 409 for a running sync adds `jobId`, 422
for refused credentials adds `checks`. The endpoints are plain functions: FastAPI runs them in
its thread pool, so store and platform I/O never block the PDP's event loop.

Before any endpoint: `Guard` refuses NUL bytes (400), oversized bodies (413) and bodies that
are not JSON (415); `_caller` authenticates and admits (403 for a caller holding nothing,
before the body is validated). Swagger UI at /docs is served from the swagger-ui-bundle package.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import swagger_ui_bundle  # type: ignore[import-untyped]
from fastapi import Depends, FastAPI, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pdp.admin.guard import MAX_BODY_BYTES, Guard, Outage, TooLarge, error
from pdp.auth.errors import PermissionDenied, Unauthenticated
from pdp.control import Caller, ControlPlane, Forbidden, JobRunning, Registration, ValidationFailed
from pdp.control.legacy import LegacyApi, LegacyRetired
from pdp.control.upgrade import UpgradeManager, WrongStep
from pdp.objects.errors import Conflict, InvalidInput, NotFound, ObjectError
from pdp.objects.paths import ObjectPath

log = logging.getLogger(__name__)

USER_HEADER = "X-Pdp-User"
Authenticate = Callable[[Request], Awaitable[Caller]]


@dataclass(frozen=True)
class AdminSettings:
    """`admin:` in pdp.yaml. `trust_user_header` (tests and loopback only, with `auth: none`):
    the caller is whoever the `X-Pdp-User` header names."""

    listen: str = "127.0.0.1:8282"
    trust_user_header: bool = False
    required_scopes: tuple[str, ...] = ()
    # the token claim naming the caller in the user directory (docs/auth.md)
    user_claim: str = "sub"
    # a request body larger than this is refused (413) before it is read further
    max_body_bytes: int = MAX_BODY_BYTES


# --- the error shape, as the OpenAPI document shows it -------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # permission, jobId, checks, replacement...
    code: str
    message: str
    field: str | None = None
    value: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


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


def _install_docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-bundle package (works without internet), and an OpenAPI
    document that shows the real error answers: 400 with `ErrorBody`, never FastAPI's 422."""
    files = Path(str(swagger_ui_bundle.swagger_ui_path))
    app.mount("/docs/static", StaticFiles(directory=files), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="PDP admin API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = schema.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- request bodies --------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConnectionDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    technology: str
    endpoint: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict)
    # non-Trino connections: database -> the Trino catalog exposing it (masks reach Trino)
    trinoCatalogs: dict[str, str] | None = None


class InitialSettings(_Body):
    isActive: StrictBool | None = None
    activateNewChildren: StrictBool | None = None


class RegisterOptions(_Body):
    forceRecursiveCrawl: StrictBool = False
    schedule: str | None = None
    failSafeThreshold: float | None = None


class RegisterBody(_Body):
    connectionKey: str
    connection: ConnectionDetails
    settings: InitialSettings = Field(default_factory=InitialSettings)
    options: RegisterOptions = Field(default_factory=RegisterOptions)


class UpdateConnectionBody(_Body):
    endpoint: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None
    schedule: str | None = None
    failSafeThreshold: float | None = None
    # database -> Trino catalog, replacing the whole mapping ({}: none)
    trinoCatalogs: dict[str, str] | None = None


class SettingsBody(_Body):
    isActive: StrictBool | None = None
    activateNewChildren: StrictBool | None = None


class SearchBody(_Body):
    searchText: str | None = None
    kind: str | None = None
    remoteState: str | None = None
    isActive: StrictBool | None = None
    recursive: StrictBool = False
    offset: int = Field(default=0, ge=0)
    size: int = Field(default=100, ge=0, le=1000)


class CrawlBody(_Body):
    forceRecursive: StrictBool = False


class PermissionBody(_Body):
    principal: str = Field(min_length=1)
    role: str
    principalKind: str = "user"
    revoke: StrictBool = False


class StartBody(_Body):
    displayName: str


class ValidateBody(_Body):
    endpoint: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None


class UpgradeBody(_Body):
    confirm: StrictBool = False


class ResolveBody(_Body):
    action: str
    path: str | None = None


class DetectBody(_Body):
    connection: str


class MonitoringBody(_Body):
    database: str
    schema_: str = Field(alias="schema")
    enabled: StrictBool


# --- the application -------------------------------------------------------------------------


# Declares the bearer scheme in the OpenAPI document (Swagger UI's Authorize button); the
# token itself is checked by the app's `authenticate`.
_BEARER = HTTPBearer(auto_error=False, description="an access token of the PDP's `auth:` issuer")


async def _caller(
    request: Request, _token: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]
) -> Caller:
    """The authenticated caller, admitted: one holding no control-plane permission at all is
    refused (403) here, before the body is validated or anything is looked up, so that no
    answer tells them which keys exist."""
    authenticate: Authenticate = request.app.state.authenticate
    caller = await authenticate(request)
    plane: ControlPlane = request.app.state.plane
    await run_in_threadpool(plane.admit, caller)
    return caller


Who = Annotated[Caller, Depends(_caller)]


def create_app(
    plane: ControlPlane,
    authenticate: Authenticate,
    store_available: Callable[[], bool] = lambda: True,
    revision: Callable[[], str] | None = None,
    warnings: Callable[[], Sequence[str]] = tuple,
    degraded: Callable[[], str | None] = lambda: None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    app = FastAPI(
        title="PDP admin API",
        version="1",
        description="Connections, object sync and object permissions (docs/connections.md).",
        docs_url=None,  # served below from the package's files, not a CDN
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    _install_errors(app)
    _install_docs(app)
    app.add_middleware(Guard, max_body_bytes=max_body_bytes)

    app.state.authenticate = authenticate
    app.state.plane = plane
    app.state.outage = Outage()

    def path_of(text: str) -> ObjectPath:
        return ObjectPath.parse_url(text)

    @app.post("/data/connection", status_code=201, tags=["connections"])
    def register(who: Who, body: RegisterBody) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if body.options.schedule is not None:
            options["schedule"] = body.options.schedule
        if body.options.failSafeThreshold is not None:
            options["fail_safe_threshold"] = body.options.failSafeThreshold
        if body.connection.trinoCatalogs is not None:
            options["settings"] = {"trinoCatalogs": dict(body.connection.trinoCatalogs)}
        key, job, proposal = plane.register(
            who,
            Registration(
                key=body.connectionKey,
                technology=body.connection.technology,
                endpoint=body.connection.endpoint,
                credentials=body.connection.credentials,
                is_active=body.settings.isActive,
                activate_new_children=body.settings.activateNewChildren,
                force_recursive=body.options.forceRecursiveCrawl,
                **options,
            ),
        )
        answer: dict[str, Any] = {"connectionKey": key, "jobId": job.id if job else None}
        if proposal is not None:  # a non-Trino connection registered without trinoCatalogs
            answer["trinoCatalogs"] = proposal.catalogs
            answer["trinoCatalogsProposal"] = proposal.source
        return answer

    @app.post("/data/connection/validate", tags=["connections"])
    def validate(who: Who, body: ConnectionDetails) -> dict[str, Any]:
        checks = plane.validate(who, body.technology, body.endpoint, body.credentials)
        return {
            "ok": all(c.ok for c in checks),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        }

    @app.get("/data/connection/{key}", tags=["connections"])
    def get_connection(who: Who, key: str) -> dict[str, Any]:
        return plane.connection(who, key)

    @app.put("/data/connection/{key}", tags=["connections"])
    def put_connection(who: Who, key: str, body: UpdateConnectionBody) -> dict[str, Any]:
        return plane.update_connection(
            who,
            key,
            body.endpoint,
            body.credentials,
            body.schedule,
            body.failSafeThreshold,
            body.trinoCatalogs,
        )

    @app.get("/data/object/{path:path}", tags=["objects"])
    def get_object(who: Who, path: str) -> dict[str, Any]:
        return plane.object(who, path_of(path))

    def _search(path: ObjectPath | None, body: SearchBody, who: Caller) -> dict[str, Any]:
        return plane.search(
            who,
            path,
            recursive=body.recursive,
            offset=body.offset,
            size=body.size,
            kind=body.kind,
            remote_state=body.remoteState,
            search_text=body.searchText,
            is_active=body.isActive,
        )

    @app.post("/data/object/search", tags=["objects"])
    def search_connections(who: Who, body: SearchBody | None = None) -> dict[str, Any]:
        return _search(None, body or SearchBody(), who)

    @app.post("/data/object/search/{path:path}", tags=["objects"])
    def search(who: Who, path: str, body: SearchBody | None = None) -> dict[str, Any]:
        return _search(path_of(path), body or SearchBody(), who)

    @app.put("/data/settings/{path:path}", tags=["objects"])
    def put_settings(who: Who, path: str, body: SettingsBody, response: Response) -> dict[str, Any]:
        """The new effective settings (200), or for a change reaching more descendants than
        `control.cascadeJobThreshold`, `202 {jobId}`: a cascade job applies it."""
        values = {name: getattr(body, name) for name in body.model_fields_set}
        answer = plane.set_settings(who, path_of(path), values)
        if "jobId" in answer:
            response.status_code = 202
        return answer

    @app.post("/data/crawl/{path:path}", status_code=202, tags=["sync"])
    def crawl(who: Who, path: str, body: CrawlBody | None = None) -> dict[str, Any]:
        job = plane.crawl(who, path_of(path), (body or CrawlBody()).forceRecursive)
        return {"jobId": job.id if job else None}

    @app.delete("/data/object/{path:path}", tags=["objects"])
    def delete_object(who: Who, path: str) -> dict[str, Any]:
        return plane.delete(who, path_of(path))

    @app.put("/data/permission/{path:path}", tags=["permissions"])
    def put_permission(who: Who, path: str, body: PermissionBody) -> dict[str, Any]:
        return plane.grant(
            who, path_of(path), body.principal, body.role, body.principalKind, body.revoke
        )

    @app.get("/data/permission/{path:path}", tags=["permissions"])
    def get_permission(who: Who, path: str) -> dict[str, Any]:
        return plane.permissions(who, path_of(path))

    @app.get("/jobs/{job_id}", tags=["jobs"])
    def get_job(who: Who, job_id: str) -> dict[str, Any]:
        return plane.job(who, job_id)

    @app.get("/jobs", tags=["jobs"])
    def list_jobs(
        who: Who,
        connection: str | None = None,
        state: str | None = None,
        offset: int = 0,
        size: int = 100,
    ) -> dict[str, Any]:
        return plane.jobs(who, connection, state, offset, size)

    # --- data source requests (spec §5: the `New` tag) ----------------------------------------

    @app.get("/requests", tags=["requests"])
    def list_requests(
        who: Who,
        state: str | None = None,
        connection: str | None = None,
        path: str | None = None,
    ) -> dict[str, Any]:
        """Requests on the caller's objects (all of them for GOVERNANCE); `path` keeps those
        at or below an object (`/conn/db/schema`)."""
        return plane.requests(who, state, connection, path_of(path) if path else None)

    @app.get("/requests/{request_id}", tags=["requests"])
    def get_request(who: Who, request_id: int) -> dict[str, Any]:
        return plane.request(who, request_id)

    @app.post("/requests/{request_id}/validate", tags=["requests"])
    def validate_request(who: Who, request_id: int) -> dict[str, Any]:
        """Column added: validated, its `New` tag comes off. Column deleted: acknowledged."""
        return plane.resolve_request(who, request_id)

    @app.post("/requests/{request_id}/acknowledge", tags=["requests"])
    def acknowledge_request(who: Who, request_id: int) -> dict[str, Any]:
        """The same as validate (either kind)."""
        return plane.resolve_request(who, request_id)

    # --- the upgrade manager (spec §8) and the legacy API it retires (§8.5) ------------------

    upgrades = UpgradeManager(plane)
    app.state.upgrades = upgrades
    legacy = LegacyApi(plane)

    @app.get("/data/upgrade", tags=["upgrade"])
    def upgrade_list(who: Who) -> dict[str, Any]:
        return upgrades.integrations(who)

    @app.get("/data/upgrade/{name}", tags=["upgrade"])
    def upgrade_status(who: Who, name: str) -> dict[str, Any]:
        return upgrades.status(who, name)

    @app.get("/data/upgrade/{name}/unresolved", tags=["upgrade"])
    def upgrade_unresolved(who: Who, name: str) -> dict[str, Any]:
        return upgrades.unresolved(who, name)

    @app.post("/data/upgrade/{name}/start", tags=["upgrade"])
    def upgrade_start(who: Who, name: str, body: StartBody) -> dict[str, Any]:
        return upgrades.start(who, name, body.displayName)

    @app.post("/data/upgrade/{name}/validate", tags=["upgrade"])
    def upgrade_validate(who: Who, name: str, body: ValidateBody | None = None) -> dict[str, Any]:
        body = body or ValidateBody()
        return upgrades.validate(who, name, body.endpoint, body.credentials)

    @app.post("/data/upgrade/{name}/upgrade", status_code=202, tags=["upgrade"])
    def upgrade_run(who: Who, name: str, body: UpgradeBody | None = None) -> dict[str, Any]:
        return upgrades.upgrade(who, name, (body or UpgradeBody()).confirm)

    @app.post("/data/upgrade/{name}/resolve/{source_id}", tags=["upgrade"])
    def upgrade_resolve(who: Who, name: str, source_id: str, body: ResolveBody) -> dict[str, Any]:
        return upgrades.resolve(who, name, source_id, body.action, body.path)

    @app.post("/data/upgrade/{name}/finalize", tags=["upgrade"])
    def upgrade_finalize(who: Who, name: str) -> dict[str, Any]:
        return upgrades.finalize(who, name)

    @app.post("/dataSource", status_code=201, tags=["legacy"])
    def legacy_register(who: Who, body: dict[str, Any]) -> dict[str, Any]:
        return legacy.register_source(who, body)

    @app.put("/dataSource/detectRemoteChanges", tags=["legacy"])
    def legacy_detect(who: Who, body: DetectBody) -> dict[str, Any]:
        return legacy.detect_remote_changes(who, body.connection)

    @app.put("/dataSource/{source_id}", tags=["legacy"])
    def legacy_edit(who: Who, source_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return legacy.edit_source(who, source_id, body)

    @app.delete("/dataSource/{source_id}", tags=["legacy"])
    def legacy_delete(who: Who, source_id: str) -> dict[str, Any]:
        return legacy.delete_source(who, source_id)

    @app.put("/integrations/{name}/schemaMonitoring", tags=["legacy"])
    def legacy_monitoring(who: Who, name: str, body: MonitoringBody) -> dict[str, Any]:
        return legacy.schema_monitoring(who, name, body.database, body.schema_, body.enabled)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Unauthenticated: `degraded` with the reason while decisions rest on less than they
        should (store unreachable, active data sources no Trino catalog exposes), whether the
        store answers, the revision in force and its warnings (a group no user of the directory
        is in, a policy selecting no data source)."""
        reason = degraded()
        answer: dict[str, Any] = {
            "status": "ok" if reason is None else "degraded",
            "store": "reachable" if store_available() else "unreachable",
            "revision": revision() if revision else None,
            "warnings": list(warnings()),
        }
        if reason is not None:
            answer["reason"] = reason
        return answer

    return app


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


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(LegacyRetired)
    async def retired(request: Request, exc: LegacyRetired) -> JSONResponse:
        return error(
            400,
            "legacy_retired",
            exc.message,
            field=exc.field,
            value=exc.value,
            replacement=exc.replacement,
        )

    @app.exception_handler(WrongStep)
    async def wrong_step(request: Request, exc: WrongStep) -> JSONResponse:
        return error(
            409,
            "conflict",
            exc.message,
            field=exc.field,
            value=exc.value,
            state=exc.state.value,
            allowed=list(exc.allowed),
        )

    @app.exception_handler(JobRunning)
    async def running(request: Request, exc: JobRunning) -> JSONResponse:
        return error(
            409, "sync_running", exc.message, field=exc.field, value=exc.value, jobId=exc.job_id
        )

    @app.exception_handler(ObjectError)
    async def objecterror(request: Request, exc: ObjectError) -> JSONResponse:
        status, code = 400, "invalid_input"
        if isinstance(exc, NotFound):
            status, code = 404, "not_found"
        elif isinstance(exc, Conflict):
            status, code = 409, "conflict"
        elif not isinstance(exc, InvalidInput):
            status, code = 400, "invalid_input"
        return error(status, code, exc.message, field=exc.field, value=exc.value)

    @app.exception_handler(ValidationFailed)
    async def refused(request: Request, exc: ValidationFailed) -> JSONResponse:
        failed = next(c for c in exc.checks if not c.ok)
        return error(
            422,
            "validation_failed",
            f"the platform refused the connection details: {failed.name}: {failed.detail}",
            field="connection",
            value=failed.name,
            checks=[{"name": c.name, "ok": c.ok, "detail": c.detail} for c in exc.checks],
        )

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return error(
            403,
            "forbidden",
            exc.message,
            field="permission",
            value=exc.value,
            permission=exc.permission,
        )

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        return error(401, "unauthenticated", str(exc), field="Authorization")

    @app.exception_handler(PermissionDenied)
    async def denied(request: Request, exc: PermissionDenied) -> JSONResponse:
        return error(403, "forbidden", str(exc), field="Authorization", permission="scope")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
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

    @app.exception_handler(StarletteHTTPException)
    async def httperror(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        if isinstance(exc, TooLarge):
            return error(413, "too_large", str(exc.detail), field="body")
        if exc.status_code == 404:
            return error(
                404, code, f"no endpoint {request.url.path}", field="path", value=request.url.path
            )
        return error(exc.status_code, code, str(exc.detail), field="method", value=request.method)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def store_down(request: Request, exc: Exception) -> JSONResponse:
        request.app.state.outage.failed(exc)
        return error(
            503,
            "store_unavailable",
            "the store is unreachable; the PDP keeps deciding on its last good snapshot",
            field="store",
        )
