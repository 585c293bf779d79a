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

import html
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pdp.admin.app import Authenticate
from pdp.admin.guard import error
from pdp.auth.errors import Unauthenticated
from pdp.console.explain import Current, explain_router
from pdp.console.oidc import OidcSignIn, pkce_pair
from pdp.console.seam import COOKIE, CSRF_HEADER, as_session, session_of, session_or
from pdp.console.sessions import Session, Sessions
from pdp.console.signin import DevSignIn, SignInFailed
from pdp.policy import DirectoryUser

STATIC = Path(__file__).parent / "static"
LOGIN_COOKIE = "pdp_console_login"
LOGIN_SECONDS = 600  # a sign-in not completed within ten minutes starts again
MAX_PENDING = 1000
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
Directory = Callable[[], Mapping[str, DirectoryUser]]


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
    pending: OrderedDict[str, tuple[float, str]] = OrderedDict()  # state -> (since, verifier)
    router = APIRouter(include_in_schema=False)

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=303)

    def begin(request: Request, verifier: str = "") -> str:
        state = secrets.token_urlsafe(24)
        pending[state] = (time.monotonic(), verifier)
        while len(pending) > MAX_PENDING:
            pending.popitem(last=False)
        return state

    def remember(response: Response, request: Request, state: str) -> Response:
        response.set_cookie(
            LOGIN_COOKIE,
            state,
            max_age=LOGIN_SECONDS,
            path="/console/",
            httponly=True,
            samesite="lax",  # it must come back with the IdP's redirect
            secure=secure(request),
        )
        return response

    def finish(request: Request, state: str) -> str | None:
        """The verifier of a sign-in this browser started within ten minutes, once."""
        if not state or request.cookies.get(LOGIN_COOKIE) != state:
            return None  # (another browser cannot spend this browser's state)
        started = pending.pop(state, None)
        if started is None:
            return None
        if time.monotonic() - started[0] > LOGIN_SECONDS:
            return None
        return started[1]

    async def open_session(request: Request, session: Session) -> Response:
        caller = await as_session(request, session, inner)  # the admin API accepts it, or not
        session.user = caller.name
        # a page, not a redirect: after the IdP's cross-site redirect a SameSite=Strict cookie
        # is only sent with a navigation that starts here
        response = _page("Signed in", _SIGNED_IN, refresh=True)
        response.set_cookie(
            COOKIE,
            sessions.open(session),
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/console/")
        return response

    def failed(problem: Exception) -> Response:
        body = f"<p>{html.escape(str(problem))}</p>" + _RESTART
        return _page("Sign-in failed", body, status=502)

    @router.get("/console/signin")
    async def signin_page(request: Request) -> Response:
        if signin is None:
            return _page("Sign-in unavailable", _NO_SIGNIN, status=503)
        if isinstance(signin, OidcSignIn):
            verifier, challenge = pkce_pair()
            state = begin(request, verifier)
            try:
                url = await signin.authorize_url(callback_url(request), state, challenge)
            except SignInFailed as problem:
                return failed(problem)
            return remember(RedirectResponse(url, status_code=303), request, state)
        state = begin(request)
        users = sorted(directory())
        items = "".join(
            f'<li><a class="button" href="/console/signin/pick?{_query(user, state)}">'
            f"{html.escape(user)}</a></li>"
            for user in users
        )
        body = _PICK.format(items=items or "<li>The directory has no users.</li>")
        return remember(_page("Sign in (development)", body), request, state)

    @router.get("/console/signin/pick")
    async def pick(request: Request, user: str = "", state: str = "") -> Response:
        if not isinstance(signin, DevSignIn) or finish(request, state) is None:
            return _page("Sign in again", _RESTART, status=400)
        if user not in directory():
            return _page("Sign in again", _RESTART, status=400)
        try:
            return await open_session(request, await signin.session(user))
        except (SignInFailed, Unauthenticated) as problem:
            return failed(problem)

    @router.get("/console/callback")
    async def callback(
        request: Request, code: str = "", state: str = "", error: str = ""
    ) -> Response:
        verifier = finish(request, state)
        if not isinstance(signin, OidcSignIn) or not verifier:
            return _page("Sign in again", _RESTART, status=400)
        if error or not code:
            return failed(SignInFailed(f"the identity provider answered {error or 'no code'}"))
        try:
            session = await signin.session(code, verifier, callback_url(request))
            return await open_session(request, session)
        except (SignInFailed, Unauthenticated) as problem:
            return failed(problem)

    @router.get("/console/session")
    async def whoami(request: Request) -> Response:
        session = session_of(request, sessions)
        if session is None:
            return error(401, "unauthenticated", "not signed in to the console", field="cookie")
        caller = await as_session(request, session, inner)
        return JSONResponse(
            {"user": caller.name, "csrf": session.csrf},
            headers={"Cache-Control": "no-store"},
        )

    @router.post("/console/signout")
    async def signout(request: Request) -> Response:
        session = session_of(request, sessions)
        if session is not None and request.headers.get(CSRF_HEADER) != session.csrf:
            return error(
                403, "forbidden", f"sign-out needs the {CSRF_HEADER} header", field=CSRF_HEADER
            )
        sessions.close(request.cookies.get(COOKIE))
        response = JSONResponse({"signedOut": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/console/signedout")
    def signed_out() -> Response:
        # not straight to the sign-in: with an IdP session still open, that would sign in again
        return _page("Signed out", _SIGNED_OUT)

    @router.get("/console/")
    @router.get("/console/{page:path}")
    def shell(request: Request, page: str = "") -> Response:
        if session_of(request, sessions) is None:
            return RedirectResponse("/console/signin", status_code=303)
        return HTMLResponse((STATIC / "shell.html").read_text(encoding="utf-8"))

    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)
    app.include_router(explain_router(current))
    app.add_middleware(SecurityHeaders)
    return sessions


def callback_url(request: Request) -> str:
    """Where the IdP sends the browser back: this listener's /console/callback (register it as
    the client's redirect URI)."""
    return f"{request.base_url}console/callback"


def _query(user: str, state: str) -> str:
    return html.escape(urlencode({"user": user, "state": state}))


def _page(title: str, body: str, status: int = 200, refresh: bool = False) -> HTMLResponse:
    meta = '<meta http-equiv="refresh" content="0;url=/console/">' if refresh else ""
    text = _FRAME.format(title=html.escape(title), meta=meta, body=body)
    return HTMLResponse(text, status_code=status)


_FRAME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{meta}
<title>{title} · PDP console</title>
<link rel="stylesheet" href="/console/static/console.css">
<link rel="icon" href="/console/static/favicon.svg"></head>
<body><main class="signin"><h1>{title}</h1>{body}</main></body></html>
"""
_PICK = """<p class="warning" role="note"><strong>Development only.</strong> This page exists
because pdp.yaml runs the development token issuer: anyone who reaches it may act as any user.
With your identity provider in <code>auth:</code> there is no such page.</p>
<nav aria-label="Users of the directory"><p>Sign in as:</p><ul class="users">{items}</ul></nav>
"""
_RESTART = '<p><a href="/console/signin">Start the sign-in again</a>.</p>'
_SIGNED_OUT = '<p>The console session has ended. <a href="/console/signin">Sign in again</a>.</p>'
_SIGNED_IN = '<p><a href="/console/">Continue to the console</a>.</p>'
_NO_SIGNIN = """<p>The console has no sign-in method: pdp.yaml names no console client of your
identity provider (<code>console.signIn</code>), and runs neither the development issuer with
user tokens nor, for tests on loopback, <code>admin.trustUserHeader</code>. The admin API still
takes bearer tokens.</p>"""
