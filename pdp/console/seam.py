"""The one seam between the console and the admin API: the admin API's authentication also
accepts a console session cookie. The session presents its user's credential to the admin
API's own authentication (the same validator, claim and directory as a bearer token), so the
console has no permission check of its own that could disagree with the API's. A write
through the cookie must carry the session's CSRF token in `X-Pdp-Csrf`; a request with an
Authorization or user header is authenticated exactly as before."""

from __future__ import annotations

import hmac

from fastapi import Request

from pdp.admin.app import USER_HEADER, Authenticate
from pdp.auth.errors import PermissionDenied, Unauthenticated
from pdp.console.sessions import Session, Sessions
from pdp.control import Caller

COOKIE = "pdp_console"
CSRF_HEADER = "X-Pdp-Csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_of(request: Request, sessions: Sessions) -> Session | None:
    return sessions.get(request.cookies.get(COOKIE))


async def as_session(request: Request, session: Session, inner: Authenticate) -> Caller:
    """Authenticate `request` with the admin API's own authentication, presenting the
    session's credential in place of the headers the browser sent."""
    token = await session.credential()
    if token is None:
        raise Unauthenticated(
            "the console session has ended: its token expired and could not be renewed; "
            "sign in again"
        )
    name, prefix = session.header
    kept = [(k, v) for k, v in request.scope["headers"] if k not in _PRESENTED]
    scope = {**request.scope, "headers": [*kept, (name.encode(), f"{prefix}{token}".encode())]}
    return await inner(Request(scope, request.receive))


def session_or(inner: Authenticate, sessions: Sessions) -> Authenticate:
    async def authenticate(request: Request) -> Caller:
        if "authorization" in request.headers or USER_HEADER in request.headers:
            return await inner(request)
        if COOKIE not in request.cookies:
            return await inner(request)  # 401 as without a console
        session = session_of(request, sessions)
        if session is None:
            raise Unauthenticated("the console session has ended; sign in again")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                raise PermissionDenied(
                    f"a write through the console session needs its {CSRF_HEADER} header"
                )
        return await as_session(request, session, inner)

    return authenticate


_PRESENTED = (b"authorization", USER_HEADER.lower().encode())
