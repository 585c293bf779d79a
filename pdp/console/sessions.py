"""The console's sessions, held server side: the browser keeps only an opaque id in an HttpOnly
cookie, never a token. Each session has its own CSRF token, which every write through the
cookie must echo in a header (the admin API checks it, pdp.console.seam)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# A credential the admin API accepts for this user, with the time it stops being accepted
# (monotonic seconds, None: never); refreshed by the sign-in method that made it.
Credential = tuple[str, float | None]
Refresh = Callable[[], Awaitable[Credential]]

IDLE_SECONDS = 30 * 60  # a session unused this long ends
LIFETIME_SECONDS = 12 * 60 * 60  # and every session ends after a working day
MAX_SESSIONS = 10_000  # the oldest goes first: memory stays bounded whatever is signed in
REFRESH_MARGIN = 30.0  # renew a token this many seconds before it expires (at most a quarter
# of its lifetime: a token that lives a minute is renewed after 45 seconds)


class SignInFailed(Exception):
    """The identity provider refused, or did not answer: shown to the person as it is. A
    renewal that fails this way ends the session."""


def renew_at(now: float, expires: float | None) -> float | None:
    if expires is None:
        return None
    return expires - min(REFRESH_MARGIN, max(expires - now, 0.0) / 4)


@dataclass
class Session:
    user: str
    header: tuple[str, str]  # what the admin API's authentication reads: (name, value prefix)
    token: str
    expires: float | None
    refresh: Refresh | None
    id_token: str | None = None  # the IdP's, kept as the hint of its sign-out (RP-initiated)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)
    ended: bool = False  # its token could not be renewed: Sessions drops it
    _renew_at: float | None = field(init=False, default=None)
    _renewing: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self._renew_at = renew_at(self.created, self.expires)

    async def credential(self) -> str | None:
        """The token to present now, renewed when it is about to expire; None when it has
        expired and cannot be renewed, or the IdP refused to renew it (the user signs in
        again). One renewal at a time: a rotated refresh token is spent once."""
        async with self._renewing:
            now = time.monotonic()
            if self.ended or self._renew_at is None or now < self._renew_at:
                return None if self.ended else self.token
            if self.refresh is None:
                return None if now >= (self.expires or now) else self.token
            try:
                self.token, self.expires = await self.refresh()
            except SignInFailed:
                self.ended = True
                return None
            self._renew_at = renew_at(now, self.expires)
            return self.token


class Sessions:
    def __init__(self, idle: float = IDLE_SECONDS, lifetime: float = LIFETIME_SECONDS) -> None:
        self.idle, self.lifetime = idle, lifetime
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, session: Session) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[sid] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return sid

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            idle, old = now - session.used > self.idle, now - session.created > self.lifetime
            if session.ended or idle or old:
                del self._sessions[sid]
                return None
            session.used = now
            return session

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)
