"""The token request as plain steps, shared by the sync and the asyncio token source.

`fetch_token` is a generator: it yields an `httpx.Request` to send or a float of seconds to
sleep, and is sent back the response (or the transport error). The sources only drive it, so
request building, retries, backoff and error mapping exist once.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from pdp.auth.assertion import ASSERTION_TYPE, client_assertion
from pdp.auth.credentials import ClientCertificate, ClientCredentials
from pdp.auth.errors import (
    MalformedTokenResponse,
    TokenEndpointUnavailable,
    TokenError,
    TokenRequestRejected,
    rejection,
)
from pdp.config.secret import Secret

logger = logging.getLogger("pdp.auth")

Clock = Callable[[], float]
Step = httpx.Request | float
Outcome = httpx.Response | httpx.TransportError | None

# Refresh this long before expiry at least: clock drift between the IdP and the resource
# server, plus resource servers with less leeway than our PDP (oauth.md §1.8).
REFRESH_SKEW = 60.0
# RFC 6749 only recommends expires_in; without it assume a short life rather than a long one.
DEFAULT_LIFETIME = 300.0
# Error fields worth keeping for a support ticket (Entra sends all of them).
_ERROR_DETAILS = ("error_codes", "error_uri", "trace_id", "correlation_id")


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)
    scope: str | None
    expires_at: float
    refresh_at: float

    @classmethod
    def issued(cls, access_token: str, scope: str | None, lifetime: float, sent_at: float) -> Token:
        """Expiry counts from when the request was sent, so network time is not validity."""
        margin = min(max(REFRESH_SKEW, 0.1 * lifetime), lifetime / 2)
        return cls(access_token, scope, sent_at + lifetime, sent_at + lifetime - margin)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for transient failures; remembered failures keep callers off the IdP."""

    attempts: int = 3
    first_delay: float = 0.25
    max_delay: float = 4.0
    rejected_backoff: float = 30.0
    unavailable_backoff: float = 2.0

    def delay(self, retry: int) -> float:
        """Exponential with jitter, so a fleet of sidecars does not retry in step."""
        return min(self.max_delay, self.first_delay * 2 ** (retry - 1)) * random.uniform(0.5, 1)


DEFAULT_RETRY = RetryPolicy()


def fetch_token(
    credentials: ClientCredentials, retry: RetryPolicy, clock: Clock
) -> Generator[Step, Outcome, Token]:
    problem = "no attempt"
    for attempt in range(retry.attempts):
        if attempt:
            yield retry.delay(attempt)
        sent_at = clock()
        outcome = yield build_request(credentials, time.time())
        if not isinstance(outcome, httpx.Response):
            problem = f"{type(outcome).__name__}: {outcome}"
        elif outcome.status_code == 429 or outcome.status_code >= 500:
            problem = f"HTTP {outcome.status_code}"
        else:
            return parse_response(outcome, sent_at)
    raise TokenEndpointUnavailable(
        f"token endpoint {credentials.token_endpoint} failed {retry.attempts} times: {problem}"
    )


def build_request(credentials: ClientCredentials, now: float) -> httpx.Request:
    form = {"grant_type": "client_credentials"}
    headers = {"Accept": "application/json"}
    if credentials.scope:
        form["scope"] = credentials.scope
    if credentials.resource:
        form["resource"] = credentials.resource
    credential = credentials.credential
    if isinstance(credential, ClientCertificate):
        audience = credential.assertion_audience or credentials.token_endpoint
        form["client_id"] = credentials.client_id  # optional in RFC 7523, Entra expects it
        form["client_assertion_type"] = ASSERTION_TYPE
        form["client_assertion"] = client_assertion(
            credential, credentials.client_id, audience, now
        )
    elif credential.method == "client_secret_post":
        form["client_id"] = credentials.client_id
        form["client_secret"] = credential.secret.reveal()
    else:
        headers["Authorization"] = basic_authorization(credentials.client_id, credential.secret)
    return httpx.Request("POST", credentials.token_endpoint, data=form, headers=headers)


def basic_authorization(client_id: str, secret: Secret) -> str:
    """RFC 6749 §2.3.1: form-urlencode each part *before* joining (httpx.BasicAuth does not)."""
    pair = f"{quote(client_id, safe='')}:{quote(secret.reveal(), safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def parse_response(response: httpx.Response, sent_at: float) -> Token:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if not response.is_success:
        error = body.get("error")
        description = body.get("error_description")
        raise rejection(
            error if isinstance(error, str) and error else f"http_{response.status_code}",
            description[:500] if isinstance(description, str) else None,
            response.status_code,
            {k: str(body[k])[:200] for k in _ERROR_DETAILS if k in body},
        )
    access_token = body.get("access_token")
    token_type = body.get("token_type")
    if not isinstance(access_token, str) or not access_token:
        raise MalformedTokenResponse("the token response has no access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise MalformedTokenResponse(f"token_type {str(token_type)[:20]!r} is not Bearer")
    scope = body.get("scope")
    return Token.issued(
        access_token,
        scope if isinstance(scope, str) else None,
        _lifetime(body.get("expires_in")),
        sent_at,
    )


def _lifetime(expires_in: object) -> float:
    if expires_in is None:
        return DEFAULT_LIFETIME
    lifetime = -1.0
    # Some servers (Entra v1) send a numeric string.
    if isinstance(expires_in, int | float | str) and not isinstance(expires_in, bool):
        with contextlib.suppress(ValueError):
            lifetime = float(expires_in)
    if not 0 < lifetime < 10 * 365 * 86400:
        raise MalformedTokenResponse(f"expires_in {str(expires_in)[:20]!r} is not a lifetime")
    return lifetime


class TokenCache:
    """The current token and the last failure. No locks and no I/O: the sources add those."""

    def __init__(self, client_id: str, retry: RetryPolicy, clock: Clock) -> None:
        self._client_id = client_id
        self._retry = retry
        self._clock = clock
        self._token: Token | None = None
        self._failure: tuple[TokenError, float] | None = None

    def fresh(self) -> str | None:
        token = self._token
        return token.access_token if token and self._clock() < token.refresh_at else None

    def usable(self) -> str | None:
        token = self._token
        return token.access_token if token and self._clock() < token.expires_at else None

    def before_fetch(self) -> str | None:
        """Under the refresh lock: a token another caller just got, or a remembered failure."""
        if (fresh := self.fresh()) is not None:
            return fresh
        if self._failure is not None and self._clock() < self._failure[1]:
            if (usable := self.usable()) is not None:
                return usable
            raise self._failure[0].with_traceback(None)
        return None

    def store(self, token: Token) -> str:
        logger.debug(
            "client %s got a token (scope %r) valid for %.0fs",
            self._client_id,
            token.scope,
            token.expires_at - self._clock(),
        )
        self._token = token
        self._failure = None
        return token.access_token

    def failed(self, error: TokenError) -> str:
        """Remember the failure; keep serving the current token while it is still valid."""
        rejected = isinstance(error, TokenRequestRejected | MalformedTokenResponse)
        backoff = self._retry.rejected_backoff if rejected else self._retry.unavailable_backoff
        self._failure = (error, self._clock() + backoff)
        logger.warning("client %s could not get a token: %s", self._client_id, error)
        if (usable := self.usable()) is not None:
            return usable
        raise error

    def invalidate(self, access_token: str | None) -> None:
        token = self._token
        if token is not None and access_token in (None, token.access_token):
            self._token = None
