"""How a person signs in to the console, and what the session then presents to the admin API.

Development sign-in (only when pdp.yaml runs the development issuer with user tokens, or on a
loopback test setup with `auth: none` and `admin.trustUserHeader`): a page to pick a user of
the directory. With the development issuer the session holds that user's token, minted by the
issuer's public user client exactly as `pdp token --user` does, and renewed before it expires.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from pdp.admin.app import USER_HEADER
from pdp.console.sessions import Credential, Session, SignInFailed

BEARER = ("authorization", "Bearer ")
TRUSTED = (USER_HEADER.lower(), "")


@dataclass(frozen=True)
class DevTokens:
    """The development issuer's token endpoint and its public user client."""

    token_url: str
    client_id: str

    async def mint(self, user: str) -> Credential:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(
                    self.token_url,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "user": user,
                    },
                )
        except httpx.HTTPError as error:
            raise SignInFailed(f"the development issuer does not answer: {error}") from None
        if answer.status_code != 200:
            raise SignInFailed(f"the development issuer refused: {answer.text[:200]}")
        body = answer.json()
        return body["access_token"], time.monotonic() + float(body.get("expires_in", 300))


@dataclass(frozen=True)
class DevSignIn:
    """Pick a user of the directory. `tokens` None: the admin API trusts the user header
    (tests and loopback only), so the session presents the name itself."""

    tokens: DevTokens | None

    async def session(self, user: str) -> Session:
        if self.tokens is None:
            return Session(user, TRUSTED, user, None, None)
        tokens = self.tokens

        async def refresh() -> Credential:
            return await tokens.mint(user)

        token, expires = await tokens.mint(user)
        return Session(user, BEARER, token, expires, refresh)
