"""The console's sessions, held server side: the browser keeps only an opaque id in an HttpOnly
cookie, never a token. Each session has its own CSRF token, which every write through the
cookie must echo in a header (the admin API checks it, pdp.console.seam)."""

from __future__ import annotations

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
REFRESH_MARGIN = 30.0  # renew a token this many seconds before it expires


@dataclass
class Session:
    user: str
    header: tuple[str, str]  # what the admin API's authentication reads: (name, value prefix)
    token: str
    expires: float | None
    refresh: Refresh | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)

    async def credential(self) -> str | None:
        """The token to present now, renewed when it is about to expire; None when it has
        expired and cannot be renewed (the user signs in again)."""
        now = time.monotonic()
        if self.expires is not None and now > self.expires - REFRESH_MARGIN:
            if self.refresh is None:
                return None if now >= self.expires else self.token
            self.token, self.expires = await self.refresh()
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
            if now - session.used > self.idle or now - session.created > self.lifetime:
                del self._sessions[sid]
                return None
            session.used = now
            return session

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)
