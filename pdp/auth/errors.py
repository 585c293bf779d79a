"""Typed failures of the auth package. Every one of them resolves to "deny" for the caller."""

from __future__ import annotations

from collections.abc import Mapping


class AuthError(Exception):
    """Base class of everything this package raises on purpose."""


class TokenError(AuthError):
    """No access token could be obtained from the token endpoint."""


class TokenEndpointUnavailable(TokenError):
    """Network failure, timeout, 429 or 5xx from the token endpoint, after bounded retries."""


class MalformedTokenResponse(TokenError):
    """The token endpoint answered 200 with something that is not a usable bearer token."""


class TokenRequestRejected(TokenError):
    """The authorization server refused the request (RFC 6749 §5.2); retrying will not help.

    These are configuration problems (wrong secret, unknown scope, unregistered certificate ...),
    so the token source remembers them for a while instead of asking again in a loop.
    """

    def __init__(
        self, error: str, description: str | None, status: int, details: Mapping[str, str]
    ) -> None:
        self.error = error
        self.description = description
        self.status = status
        self.details = dict(details)
        text = f"token endpoint rejected the request: {error} (HTTP {status})"
        if description:
            text += f": {description}"
        if details:
            text += " [" + ", ".join(f"{k}={v}" for k, v in sorted(details.items())) + "]"
        super().__init__(text)


class InvalidRequest(TokenRequestRejected):
    pass


class InvalidClient(TokenRequestRejected):
    """Client authentication failed: wrong id or secret, unknown certificate, bad assertion."""


class InvalidGrant(TokenRequestRejected):
    pass


class UnauthorizedClient(TokenRequestRejected):
    """The client may not use the client-credentials grant."""


class UnsupportedGrantType(TokenRequestRejected):
    pass


class InvalidScope(TokenRequestRejected):
    pass


class InvalidTarget(TokenRequestRejected):
    """The `resource` (RFC 8707) is unknown to the authorization server."""


_REJECTIONS: dict[str, type[TokenRequestRejected]] = {
    "invalid_request": InvalidRequest,
    "invalid_client": InvalidClient,
    "invalid_grant": InvalidGrant,
    "unauthorized_client": UnauthorizedClient,
    "unsupported_grant_type": UnsupportedGrantType,
    "invalid_scope": InvalidScope,
    "invalid_target": InvalidTarget,
}


def rejection(
    error: str, description: str | None, status: int, details: Mapping[str, str]
) -> TokenRequestRejected:
    """The typed exception for an OAuth error code; unknown codes get the base class."""
    return _REJECTIONS.get(error, TokenRequestRejected)(error, description, status, details)


class Unauthenticated(AuthError):
    """The bearer token is missing or invalid, or its signing key cannot be obtained."""


class PermissionDenied(AuthError):
    """The bearer token is valid but lacks a required scope."""
