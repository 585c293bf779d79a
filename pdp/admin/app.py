"""The admin API: FastAPI over the control plane (spec §4), OpenAPI at /openapi.json.

Every error answers one JSON shape, FastAPI's own validation errors and unknown routes included:

    {"error": {"code": "invalid_input", "message": "...", "field": "isActive", "value": "yes"}}

403 bodies add `permission` (what the caller lacks), 409 for a running sync adds `jobId`, 422
for refused credentials adds `checks`. The endpoints are plain functions: FastAPI runs them in
its thread pool, so store and platform I/O never block the PDP's event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pdp.auth.errors import PermissionDenied, Unauthenticated
from pdp.control import Caller, ControlPlane, Forbidden, JobRunning, Registration, ValidationFailed
from pdp.control.upgrade import LegacyRetired, UpgradeManager, WrongStep
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


def error_body(
    code: str, message: str, field: str | None = None, value: Any = None, **extra: Any
) -> dict[str, Any]:
    if value is not None and not isinstance(value, str | int | float | bool | list | dict):
        value = str(value)
    return {"error": {"code": code, "message": message, "field": field, "value": value, **extra}}


def _error(status: int, code: str, message: str, **fields: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(code, message, **fields), status_code=status, headers=headers)


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
    isActive: bool | None = None
    activateNewChildren: bool | None = None


class RegisterOptions(_Body):
    forceRecursiveCrawl: bool = False
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
    isActive: bool | None = None
    activateNewChildren: bool | None = None


class SearchBody(_Body):
    searchText: str | None = None
    kind: str | None = None
    remoteState: str | None = None
    isActive: bool | None = None
    recursive: bool = False
    offset: int = Field(default=0, ge=0)
    size: int = Field(default=100, ge=0, le=1000)


class CrawlBody(_Body):
    forceRecursive: bool = False


class PermissionBody(_Body):
    principal: str = Field(min_length=1)
    role: str
    principalKind: str = "user"
    revoke: bool = False


class StartBody(_Body):
    displayName: str


class ValidateBody(_Body):
    endpoint: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None


class UpgradeBody(_Body):
    confirm: bool = False


class ResolveBody(_Body):
    action: str
    path: str | None = None


class DetectBody(_Body):
    connection: str


class MonitoringBody(_Body):
    database: str
    schema_: str = Field(alias="schema")
    enabled: bool


# --- the application -------------------------------------------------------------------------


async def _caller(request: Request) -> Caller:
    authenticate: Authenticate = request.app.state.authenticate
    return await authenticate(request)


Who = Annotated[Caller, Depends(_caller)]


def create_app(
    plane: ControlPlane,
    authenticate: Authenticate,
    store_available: Callable[[], bool] = lambda: True,
    revision: Callable[[], str] | None = None,
    warnings: Callable[[], Sequence[str]] = tuple,
    degraded: Callable[[], str | None] = lambda: None,
) -> FastAPI:
    app = FastAPI(
        title="PDP admin API",
        version="1",
        description="Connections, object sync and object permissions (docs/connections.md).",
    )
    _install_errors(app)

    app.state.authenticate = authenticate

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
        return upgrades.register_source(who, body)

    @app.put("/dataSource/detectRemoteChanges", tags=["legacy"])
    def legacy_detect(who: Who, body: DetectBody) -> dict[str, Any]:
        return upgrades.detect_remote_changes(who, body.connection)

    @app.put("/dataSource/{source_id}", tags=["legacy"])
    def legacy_edit(who: Who, source_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return upgrades.edit_source(who, source_id, body)

    @app.delete("/dataSource/{source_id}", tags=["legacy"])
    def legacy_delete(who: Who, source_id: str) -> dict[str, Any]:
        return upgrades.delete_source(who, source_id)

    @app.put("/integrations/{name}/schemaMonitoring", tags=["legacy"])
    def legacy_monitoring(who: Who, name: str, body: MonitoringBody) -> dict[str, Any]:
        return upgrades.schema_monitoring(who, name, body.database, body.schema_, body.enabled)

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


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(LegacyRetired)
    async def retired(request: Request, exc: LegacyRetired) -> JSONResponse:
        return _error(
            400,
            "legacy_retired",
            exc.message,
            field=exc.field,
            value=exc.value,
            replacement=exc.replacement,
        )

    @app.exception_handler(WrongStep)
    async def wrong_step(request: Request, exc: WrongStep) -> JSONResponse:
        return _error(
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
        return _error(
            409, "sync_running", exc.message, field=exc.field, value=exc.value, jobId=exc.job_id
        )

    @app.exception_handler(ObjectError)
    async def object_error(request: Request, exc: ObjectError) -> JSONResponse:
        status, code = 400, "invalid_input"
        if isinstance(exc, NotFound):
            status, code = 404, "not_found"
        elif isinstance(exc, Conflict):
            status, code = 409, "conflict"
        elif not isinstance(exc, InvalidInput):
            status, code = 400, "invalid_input"
        return _error(status, code, exc.message, field=exc.field, value=exc.value)

    @app.exception_handler(ValidationFailed)
    async def refused(request: Request, exc: ValidationFailed) -> JSONResponse:
        failed = next(c for c in exc.checks if not c.ok)
        return _error(
            422,
            "validation_failed",
            f"the platform refused the connection details: {failed.name}: {failed.detail}",
            field="connection",
            value=failed.name,
            checks=[{"name": c.name, "ok": c.ok, "detail": c.detail} for c in exc.checks],
        )

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return _error(
            403,
            "forbidden",
            exc.message,
            field="permission",
            value=exc.value,
            permission=exc.permission,
        )

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        return _error(401, "unauthenticated", str(exc), field="Authorization")

    @app.exception_handler(PermissionDenied)
    async def denied(request: Request, exc: PermissionDenied) -> JSONResponse:
        return _error(403, "forbidden", str(exc), field="Authorization", permission="scope")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        first = problems[0] if problems else {}
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
        return _error(400, "invalid_input", message, field=field, value=value, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            return _error(
                404, code, f"no endpoint {request.url.path}", field="path", value=request.url.path
            )
        return _error(exc.status_code, code, str(exc.detail), field="method", value=request.method)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def store_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("store unreachable: %s", exc)
        return _error(
            503,
            "store_unavailable",
            "the store is unreachable; the PDP keeps deciding on its last good snapshot",
            field="store",
        )
