"""Signing in with the identity provider of `auth:`: OpenID Connect authorization code with
PKCE (S256). pdp.yaml names the console's client (`console.signIn`); the issuer is the one whose
tokens the admin API accepts, and `resource` (RFC 8707) asks for an access token meant for it.
The session holds the access token and, when the IdP gives one, the refresh token (renewing the
access token with it; a refused renewal ends the session) and the ID token (the hint of the
IdP's own sign-out, RP-initiated logout); the browser sees none of them."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from pdp.config.secret import Secret
from pdp.console.sessions import Credential, Session, SignInFailed
from pdp.console.signin import BEARER


@dataclass(frozen=True)
class OidcClient:
    """`console.signIn` in pdp.yaml."""

    issuer: str
    client_id: str
    client_secret: Secret | None = None  # None: a public client (PKCE alone)
    scope: str = "openid"
    resource: str | None = None


@dataclass(frozen=True)
class Tokens:
    """The token endpoint's answer."""

    access: str
    expires: float  # monotonic seconds
    refresh: str | None
    id_token: str | None


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class OidcSignIn:
    client: OidcClient
    _metadata: dict[str, Any] = field(default_factory=dict)

    async def metadata(self) -> dict[str, Any]:
        if not self._metadata:
            url = f"{self.client.issuer.rstrip('/')}/.well-known/openid-configuration"
            body = await self._call("GET", url)
            if body.get("issuer") != self.client.issuer:
                raise SignInFailed(f"the IdP's discovery document names another issuer: {url}")
            self._metadata = body
        return self._metadata

    async def authorize_url(self, redirect_uri: str, state: str, challenge: str) -> str:
        endpoint = (await self.metadata()).get("authorization_endpoint")
        if not isinstance(endpoint, str):
            raise SignInFailed("the IdP's discovery document has no authorization_endpoint")
        query = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.client.scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if self.client.resource:
            query["resource"] = self.client.resource
        return f"{endpoint}?{urlencode(query)}"

    async def session(self, code: str, verifier: str, redirect_uri: str) -> Session:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        first = await self._token(form)
        holder = {"refresh": first.refresh}

        async def refresh() -> Credential:
            renewed = await self._token(
                {"grant_type": "refresh_token", "refresh_token": holder["refresh"] or ""}
            )
            holder["refresh"] = renewed.refresh or holder["refresh"]  # rotated, or kept
            return renewed.access, renewed.expires

        # the user's name comes from the admin API's own authentication (flow.py)
        renew = refresh if first.refresh else None
        return Session("", BEARER, first.access, first.expires, renew, first.id_token)

    async def end_session_url(self, id_token: str, post_logout: str) -> str | None:
        """Where the browser ends its session at the IdP and comes back to `post_logout`
        (OpenID Connect RP-Initiated Logout), or None when discovery offers no such endpoint."""
        endpoint = (await self.metadata()).get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        query = {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": post_logout,
            "client_id": self.client.client_id,
        }
        return f"{endpoint}?{urlencode(query)}"

    async def _token(self, form: dict[str, str]) -> Tokens:
        endpoint = (await self.metadata()).get("token_endpoint")
        if not isinstance(endpoint, str):
            raise SignInFailed("the IdP's discovery document has no token_endpoint")
        form = {**form, "client_id": self.client.client_id}
        if self.client.client_secret is not None:
            form["client_secret"] = self.client.client_secret.reveal()
        if self.client.resource:
            form["resource"] = self.client.resource
        body = await self._call("POST", endpoint, form)
        token = body.get("access_token")
        if not isinstance(token, str):
            raise SignInFailed("the IdP's token answer has no access_token")
        expires = time.monotonic() + float(body.get("expires_in") or 300)
        refresh, id_token = body.get("refresh_token"), body.get("id_token")
        return Tokens(
            token,
            expires,
            refresh if isinstance(refresh, str) else None,
            id_token if isinstance(id_token, str) else None,
        )

    async def _call(self, method: str, url: str, form: dict[str, str] | None = None) -> Any:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.request(method, url, data=form)
        except httpx.HTTPError as error:
            raise SignInFailed(f"the identity provider does not answer: {error}") from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code != 200 or not isinstance(body, dict):
            detail = (
                body.get("error_description") or body.get("error") if isinstance(body, dict) else ""
            )
            raise SignInFailed(f"the identity provider refused ({answer.status_code}): {detail}")
        return body
