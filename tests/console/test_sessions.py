"""The console's session store: sessions end when idle, when too old, at sign-out; a token
about to expire is renewed by its sign-in method, and one that cannot be renewed ends."""

from __future__ import annotations

import asyncio
import time

from pdp.console.sessions import MAX_SESSIONS, Session, Sessions, SignInFailed
from pdp.console.signin import BEARER


def session(expires: float | None = None, refresh=None) -> Session:  # type: ignore[no-untyped-def]
    return Session("gov", BEARER, "token-1", expires, refresh)


def test_a_session_ends_when_idle_too_old_or_closed():
    idle = Sessions(idle=0.05, lifetime=60)
    sid = idle.open(session())
    assert idle.get(sid) is not None
    time.sleep(0.1)
    assert idle.get(sid) is None
    old = Sessions(idle=60, lifetime=0.05)
    sid = old.open(session())
    time.sleep(0.1)
    assert old.get(sid) is None
    closed = Sessions()
    sid = closed.open(session())
    closed.close(sid)
    assert closed.get(sid) is None
    assert closed.get(None) is None and closed.get("") is None


def test_the_oldest_session_goes_first_beyond_the_bound():
    sessions = Sessions()
    first = sessions.open(session())
    for _ in range(MAX_SESSIONS):
        sessions.open(session())
    assert sessions.get(first) is None


def test_a_token_about_to_expire_is_renewed_and_one_that_cannot_be_ends():
    async def renew() -> tuple[str, float]:
        return "token-2", time.monotonic() + 300

    # renewed when less than a quarter of its life (at most 30 s) is left
    renewing = session(expires=time.monotonic() + 0.2, refresh=renew)
    assert asyncio.run(renewing.credential()) == "token-1"
    time.sleep(0.2)  # expired now
    assert asyncio.run(renewing.credential()) == "token-2"
    assert asyncio.run(renewing.credential()) == "token-2"  # not again before its time
    fresh = session(expires=time.monotonic() + 300)
    assert asyncio.run(fresh.credential()) == "token-1"
    expired = session(expires=time.monotonic() - 1)  # no way to renew it
    assert asyncio.run(expired.credential()) is None
    ids = {Sessions().open(session()) for _ in range(100)}
    assert len(ids) == 100 and all(len(i) >= 40 for i in ids)  # random, unguessable


def test_a_refused_renewal_ends_the_session():
    async def refuse() -> tuple[str, float]:
        raise SignInFailed("the identity provider refused (400): grant not found")

    sessions = Sessions()
    refused = session(expires=time.monotonic() - 1, refresh=refuse)
    sid = sessions.open(refused)
    assert asyncio.run(refused.credential()) is None
    assert refused.ended and sessions.get(sid) is None  # gone, not retried at every request
