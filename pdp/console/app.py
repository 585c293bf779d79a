"""The governor's console on the admin listener: a server-rendered shell and sign-in pages, and
one ES module (static/console.js) whose every action is a same-origin admin API call.

    /                    -> /console/
    /console/            the shell (signed in), or -> /console/signin
    /console/signin      the sign-in method's page
    /console/session     who is signed in, and the session's CSRF token (JSON)
    /console/signout     POST, with the CSRF header
    /console/static/...  console.js, console.css

Every console page answers with a Content-Security-Policy that allows no inline script or
style and no other origin; the pages put text into the DOM as text, never as HTML."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pdp.admin.app import Authenticate
from pdp.console.explain import Current, explain_router
from pdp.console.flow import Directory, SignInFlow
from pdp.console.oidc import OidcSignIn
from pdp.console.seam import session_of, session_or
from pdp.console.sessions import Sessions
from pdp.console.signin import DevSignIn

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The shell names console.js and console.css with their digest (`?v=`): a browser keeps them
# (immutable) until the files change, so a page costs the shell and its API reads only.
ASSETS = ("console.js", "console.css")
IMMUTABLE = "public, max-age=31536000, immutable"
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """The console's headers on every answer under /console (and the redirect at /)."""

    def __init__(self, app: ASGIApp, versions: dict[str, str] | None = None) -> None:
        self.app = app
        self.versions = versions or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == "/" or path == "/console" or path.startswith("/console/")):
            await self.app(scope, receive, send)
            return

        headers = HEADERS
        if self._current_asset(path, scope.get("query_string", b"")):
            headers = {**HEADERS, "Cache-Control": IMMUTABLE}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode())
                    for k, v in headers.items()
                    if k.lower().encode() not in names
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)

    def _current_asset(self, path: str, query: bytes) -> bool:
        """A static file asked for with its current digest (another one: not cached)."""
        name = path.removeprefix("/console/static/")
        version = self.versions.get(name)
        return version is not None and query == f"v={version}".encode()


def asset_versions() -> dict[str, str]:
    return {name: hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:16] for name in ASSETS}


def shell_page(versions: dict[str, str]) -> str:
    """The shell, its assets named with their digests."""
    text = (STATIC / "shell.html").read_text(encoding="utf-8")
    for name, version in versions.items():
        text = text.replace(f"/console/static/{name}", f"/console/static/{name}?v={version}")
    return text


def mount_console(
    app: FastAPI,
    directory: Directory,
    signin: DevSignIn | OidcSignIn | None,
    current: Current,
) -> Sessions:
    """Serve the console from `app` (the admin API) and let the admin API's authentication
    accept its sessions. `signin` None: no sign-in method is configured, the console says so.
    `current`: the snapshot and cluster settings decisions are made on (the Access page)."""
    sessions = Sessions()
    inner: Authenticate = app.state.authenticate
    app.state.authenticate = session_or(inner, sessions)
    flow = SignInFlow(sessions, inner, directory, signin)
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/", root)
    router.add_api_route("/console/signin", flow.signin_page)
    router.add_api_route("/console/signin/pick", flow.pick)
    router.add_api_route("/console/callback", flow.callback)
    router.add_api_route("/console/session", flow.whoami)
    router.add_api_route("/console/signout", flow.signout, methods=["POST"])
    router.add_api_route("/console/signedout", flow.signed_out)

    versions = asset_versions()
    page_text = shell_page(versions)

    def shell(request: Request, page: str = "") -> Response:
        if session_of(request, sessions) is None:
            return RedirectResponse("/console/signin", status_code=303)
        return HTMLResponse(page_text)

    router.add_api_route("/console/", shell)
    router.add_api_route("/console/{page:path}", shell)  # the module draws the page
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)
    app.include_router(explain_router(current))
    app.add_middleware(SecurityHeaders, versions=versions)
    return sessions


def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)
