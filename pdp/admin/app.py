"""The admin API: FastAPI over the control plane (spec §4), OpenAPI at /openapi.json.

Every error answers one JSON shape, FastAPI's own validation errors and unknown routes included:

    {"error": {"code": "invalid_input", "message": "...", "field": "isActive", "value": "yes"}}

403 bodies add `permission` (what the caller lacks), 409 for a running sync adds `jobId`, 422
for refused credentials adds `checks`. The endpoints are plain functions: FastAPI runs them in
its thread pool, so store and platform I/O never block the PDP's event loop.

Before any endpoint: `Guard` refuses NUL bytes (400), oversized bodies (413) and bodies that
are not JSON (415); `_caller` authenticates and admits (403 for a caller holding nothing,
before the body is validated). Swagger UI at /docs is served from the swagger-ui-bundle package.

The JSON shapes are `pdp.admin.schema`, the error table `pdp.admin.errors`, the routes one
router per resource in `pdp.admin.routes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import swagger_ui_bundle  # type: ignore[import-untyped]
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from pdp.admin.deps import USER_HEADER, Authenticate
from pdp.admin.errors import ERROR_RESPONSES, install_errors
from pdp.admin.guard import MAX_BODY_BYTES, Guard, Outage
from pdp.admin.routes import ROUTERS
from pdp.admin.routes.health import HealthSources
from pdp.control import ControlPlane
from pdp.control.legacy import LegacyApi
from pdp.control.upgrade import UpgradeManager

__all__ = ["USER_HEADER", "AdminSettings", "Authenticate", "create_app"]


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
    install_errors(app)
    _install_docs(app)
    app.add_middleware(Guard, max_body_bytes=max_body_bytes)
    app.state.authenticate = authenticate
    app.state.plane = plane
    app.state.outage = Outage()
    app.state.upgrades = UpgradeManager(plane)
    app.state.legacy = LegacyApi(plane)
    app.state.health = HealthSources(store_available, revision, warnings, degraded)
    for router in ROUTERS:
        app.include_router(router)
    return app


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
