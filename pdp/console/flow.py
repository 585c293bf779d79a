"""The sign-in pages and the session endpoints: the one-time `state` a browser carries through a
sign-in, the development picker, the IdP's callback, who is signed in, sign-out."""

from __future__ import annotations

import html
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from pdp.admin.app import Authenticate
from pdp.admin.guard import error
from pdp.auth.errors import Unauthenticated
from pdp.console.oidc import OidcSignIn, pkce_pair
from pdp.console.seam import COOKIE, CSRF_HEADER, as_session, session_of
from pdp.console.sessions import Session, Sessions, SignInFailed
from pdp.console.signin import DevSignIn
from pdp.policy import DirectoryUser

LOGIN_COOKIE = "pdp_console_login"
LOGIN_SECONDS = 600  # a sign-in not completed within ten minutes starts again
MAX_PENDING = 1000
Directory = Callable[[], Mapping[str, DirectoryUser]]


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def callback_url(request: Request) -> str:
    """Where the IdP sends the browser back: this listener's /console/callback (register it as
    the client's redirect URI)."""
    return f"{request.base_url}console/callback"


class SignInFlow:
    def __init__(
        self,
        sessions: Sessions,
        inner: Authenticate,
        directory: Directory,
        signin: DevSignIn | OidcSignIn | None,
    ) -> None:
        self.sessions, self.inner, self.directory, self.signin = sessions, inner, directory, signin
        self.pending: OrderedDict[str, tuple[float, str]] = OrderedDict()  # state: since, verifier

    # --- the one-time state ----------------------------------------------------------------

    def begin(self, verifier: str = "") -> str:
        state = secrets.token_urlsafe(24)
        self.pending[state] = (time.monotonic(), verifier)
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        return state

    def remember(self, response: Response, request: Request, state: str) -> Response:
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

    def finish(self, request: Request, state: str) -> str | None:
        """The verifier of a sign-in this browser started within ten minutes, once."""
        if not state or request.cookies.get(LOGIN_COOKIE) != state:
            return None  # (another browser cannot spend this browser's state)
        started = self.pending.pop(state, None)
        if started is None or time.monotonic() - started[0] > LOGIN_SECONDS:
            return None
        return started[1]

    async def open_session(self, request: Request, session: Session) -> Response:
        caller = await as_session(request, session, self.inner)  # the admin API accepts it
        session.user = caller.name
        # a page, not a redirect: after the IdP's cross-site redirect a SameSite=Strict cookie
        # is only sent with a navigation that starts here
        response = page("Signed in", SIGNED_IN, refresh=True)
        response.set_cookie(
            COOKIE,
            self.sessions.open(session),
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/console/")
        return response

    # --- the routes ------------------------------------------------------------------------

    async def signin_page(self, request: Request) -> Response:
        if self.signin is None:
            return page("Sign-in unavailable", NO_SIGNIN, status=503)
        if isinstance(self.signin, OidcSignIn):
            verifier, challenge = pkce_pair()
            state = self.begin(verifier)
            try:
                url = await self.signin.authorize_url(callback_url(request), state, challenge)
            except SignInFailed as problem:
                return failed(problem)
            return self.remember(RedirectResponse(url, status_code=303), request, state)
        state = self.begin()
        items = "".join(
            f'<li><a class="button" href="/console/signin/pick?{_query(user, state)}">'
            f"{html.escape(user)}</a></li>"
            for user in sorted(self.directory())
        )
        body = PICK.format(items=items or "<li>The directory has no users.</li>")
        return self.remember(page("Sign in (development)", body), request, state)

    async def pick(self, request: Request, user: str = "", state: str = "") -> Response:
        signin = self.signin
        if not isinstance(signin, DevSignIn) or self.finish(request, state) is None:
            return page("Sign in again", RESTART, status=400)
        if user not in self.directory():
            return page("Sign in again", RESTART, status=400)
        try:
            return await self.open_session(request, await signin.session(user))
        except (SignInFailed, Unauthenticated) as problem:
            return failed(problem)

    async def callback(
        self, request: Request, code: str = "", state: str = "", error: str = ""
    ) -> Response:
        verifier = self.finish(request, state)
        if not isinstance(self.signin, OidcSignIn) or not verifier:
            return page("Sign in again", RESTART, status=400)
        if error or not code:
            return failed(SignInFailed(f"the identity provider answered {error or 'no code'}"))
        try:
            session = await self.signin.session(code, verifier, callback_url(request))
            return await self.open_session(request, session)
        except (SignInFailed, Unauthenticated) as problem:
            return failed(problem)

    async def whoami(self, request: Request) -> Response:
        session = session_of(request, self.sessions)
        if session is None:
            return error(401, "unauthenticated", "not signed in to the console", field="cookie")
        caller = await as_session(request, session, self.inner)
        return JSONResponse(
            {"user": caller.name, "csrf": session.csrf}, headers={"Cache-Control": "no-store"}
        )

    async def signout(self, request: Request) -> Response:
        session = session_of(request, self.sessions)
        if session is not None and request.headers.get(CSRF_HEADER) != session.csrf:
            message = f"sign-out needs the {CSRF_HEADER} header"
            return error(403, "forbidden", message, field=CSRF_HEADER)
        self.sessions.close(request.cookies.get(COOKIE))
        response = JSONResponse(
            {"signedOut": True, "next": await self.after_signout(request, session)}
        )
        response.delete_cookie(COOKIE, path="/")
        return response

    async def after_signout(self, request: Request, session: Session | None) -> str:
        """Where the browser goes next: the IdP's end-session endpoint when discovery offers
        one (its session ends too, then it sends the browser to the Signed out page), else
        that page at once."""
        here = "/console/signedout"
        if not isinstance(self.signin, OidcSignIn) or session is None or not session.id_token:
            return here
        try:
            url = await self.signin.end_session_url(
                session.id_token, f"{request.base_url}console/signedout"
            )
        except SignInFailed:
            return here  # the IdP does not answer: the console's session has ended all the same
        return url or here

    def signed_out(self) -> Response:
        # not straight to the sign-in: with an IdP session still open, that would sign in again
        return page("Signed out", SIGNED_OUT)


def failed(problem: Exception) -> Response:
    body = f"<p>{html.escape(str(problem))}</p>" + RESTART
    return page("Sign-in failed", body, status=502)


def _query(user: str, state: str) -> str:
    return html.escape(urlencode({"user": user, "state": state}))


def page(title: str, body: str, status: int = 200, refresh: bool = False) -> HTMLResponse:
    meta = '<meta http-equiv="refresh" content="0;url=/console/">' if refresh else ""
    text = FRAME.format(title=html.escape(title), meta=meta, body=body)
    return HTMLResponse(text, status_code=status)


FRAME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{meta}
<title>{title} · PDP console</title>
<link rel="stylesheet" href="/console/static/console.css">
<link rel="icon" href="/console/static/favicon.svg"></head>
<body><main class="signin"><h1>{title}</h1>{body}</main></body></html>
"""
PICK = """<p class="warning" role="note"><strong>Development only.</strong> This page exists
because pdp.yaml runs the development token issuer: anyone who reaches it may act as any user.
With your identity provider in <code>auth:</code> there is no such page.</p>
<nav aria-label="Users of the directory"><p>Sign in as:</p><ul class="users">{items}</ul></nav>
"""
RESTART = '<p><a href="/console/signin">Start the sign-in again</a>.</p>'
SIGNED_OUT = '<p>The console session has ended. <a href="/console/signin">Sign in again</a>.</p>'
SIGNED_IN = '<p><a href="/console/">Continue to the console</a>.</p>'
NO_SIGNIN = """<p>The console has no sign-in method: pdp.yaml names no console client of your
identity provider (<code>console.signIn</code>), and runs neither the development issuer with
user tokens nor, for tests on loopback, <code>admin.trustUserHeader</code>. The admin API still
takes bearer tokens.</p>"""
