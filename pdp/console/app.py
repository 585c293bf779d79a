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
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """The console's headers on every answer under /console (and the redirect at /)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == "/" or path == "/console" or path.startswith("/console/")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode())
                    for k, v in HEADERS.items()
                    if k.lower().encode() not in names
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


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

    def shell(request: Request, page: str = "") -> Response:
        if session_of(request, sessions) is None:
            return RedirectResponse("/console/signin", status_code=303)
        return HTMLResponse((STATIC / "shell.html").read_text(encoding="utf-8"))

    router.add_api_route("/console/", shell)
    router.add_api_route("/console/{page:path}", shell)  # the module draws the page
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)
    app.include_router(explain_router(current))
    app.add_middleware(SecurityHeaders)
    return sessions


def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)
