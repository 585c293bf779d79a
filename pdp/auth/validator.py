"""Bearer-token validation for the PDP: signature, issuer, audience, times, then scopes.

The checks follow RFC 8725 and oauth.md §2: a fixed allow-list of asymmetric algorithms (never
taken from the token or the JWKS), a required `kid`, exact `iss`, one of our audiences, a small
leeway, required claims, and the required scopes from `scope`, `scp` or `roles`.
Anything wrong with the token is `Unauthenticated`; a valid token without a required scope is
`PermissionDenied`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from pdp.auth.credentials import check_endpoint_url, is_safe_url
from pdp.auth.errors import PermissionDenied, Unauthenticated
from pdp.auth.jwks import KeySource, RemoteKeys, VerificationKey
from pdp.config.errors import Collector, ConfigError
from pdp.config.fields import Fields

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256")
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
# Checked before any parsing; real access tokens, even Entra's with many roles, are far smaller.
MAX_TOKEN_BYTES = 16 * 1024
_MAX_LEEWAY = 300.0
# Claims naming the calling client: RFC 9068, Entra v2, Entra v1, Okta.
_CLIENT_ID_CLAIMS = ("client_id", "azp", "appid", "cid")


@dataclass(frozen=True)
class ValidatorConfig:
    """What the PDP accepts. `token_type` pins the JWT `typ` header (e.g. `at+jwt`) if set."""

    issuer: str
    audience: tuple[str, ...]
    jwks_uri: str
    required_scopes: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_seconds: float = 30.0
    token_type: str | None = None

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ConfigError("issuer must not be empty")
        if not self.audience or not all(self.audience):
            raise ConfigError("audience must name at least one non-empty value")
        if (problem := _algorithms_problem(self.algorithms)) is not None:
            raise ConfigError(problem)
        if not 0 <= self.leeway_seconds <= _MAX_LEEWAY:
            raise ConfigError(f"leeway must be between 0 and {_MAX_LEEWAY:g} seconds")
        check_endpoint_url(self.jwks_uri, "JWKS URI")

    @classmethod
    def from_mapping(cls, value: object, where: str = "auth", file: str = "") -> ValidatorConfig:
        """Parse the `auth:` block of a server (see docs/auth.md), reporting every problem."""
        found = Collector(file)
        f = Fields(value, where, found, _SERVER_KEYS)
        audience = f.words("audience")
        if not audience:
            f.error("audience", "required")
        jwks_uri = f.text("jwksUri", required=True)
        if jwks_uri and not is_safe_url(jwks_uri):
            f.error("jwksUri", "must be an https URL (http only for loopback)")
        algorithms = f.words("algorithms") or DEFAULT_ALGORITHMS
        if (problem := _algorithms_problem(algorithms)) is not None:
            f.error("algorithms", problem)
        issuer = f.text("issuer", required=True)
        leeway = f.number("leewaySeconds", 30.0, low=0, high=_MAX_LEEWAY)
        token_type = f.text("tokenType") or None
        scopes = f.words("requiredScope")
        found.raise_if_any()
        return cls(
            issuer=issuer,
            audience=audience,
            jwks_uri=jwks_uri,
            required_scopes=scopes,
            algorithms=algorithms,
            leeway_seconds=leeway,
            token_type=token_type,
        )


def _algorithms_problem(algorithms: tuple[str, ...]) -> str | None:
    if not algorithms:
        return "name at least one algorithm"
    for algorithm in algorithms:
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            return f"{algorithm!r} is not allowed; use asymmetric algorithms only: " + ", ".join(
                sorted(ASYMMETRIC_ALGORITHMS)
            )
    return None


_SERVER_KEYS = (
    "issuer",
    "audience",
    "jwksUri",
    "requiredScope",
    "algorithms",
    "leewaySeconds",
    "tokenType",
)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as the token describes it."""

    subject: str
    client_id: str | None
    scopes: frozenset[str]
    issuer: str
    claims: Mapping[str, Any] = field(repr=False, compare=False)


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from `scope` (RFC 9068, Keycloak), `scp` (Okta: list, Entra: string), `roles`."""
    scopes: set[str] = set()
    for name in ("scope", "scp", "roles"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(item for item in value if isinstance(item, str))
    return frozenset(scopes)


class Validator:
    def __init__(self, config: ValidatorConfig, keys: KeySource | None = None) -> None:
        self.config = config
        self._owned_keys: RemoteKeys | None = None
        if keys is None:
            keys = self._owned_keys = RemoteKeys(config.jwks_uri)
        self.keys: KeySource = keys

    def close(self) -> None:
        """Close the JWKS client this validator created (not one passed in)."""
        if self._owned_keys is not None:
            self._owned_keys.close()

    def validate(self, token: str) -> Principal:
        """Validate in the calling thread; may block on a JWKS fetch."""
        algorithm, kid = self._header(token)
        return self._verify(token, algorithm, self.keys.get(kid))

    async def validate_async(self, token: str) -> Principal:
        """Validate without blocking the event loop: a JWKS fetch runs in a worker thread."""
        algorithm, kid = self._header(token)
        key = self.keys.cached(kid)
        if key is None:
            key = await asyncio.to_thread(self.keys.get, kid)
        return self._verify(token, algorithm, key)

    def _header(self, token: str) -> tuple[str, str]:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated("token is too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.config.algorithms:
            raise Unauthenticated(f"token algorithm {str(algorithm)[:16]!r} is not allowed")
        pinned = self.config.token_type
        if pinned is not None and _media_type(header.get("typ")) != _media_type(pinned):
            raise Unauthenticated(f"token type is not {pinned!r}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("token has no key id (kid)")
        return algorithm, kid

    def _verify(self, token: str, algorithm: str, key: VerificationKey) -> Principal:
        config = self.config
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=list(config.audience),
                issuer=config.issuer,
                leeway=config.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(_reason(error)) from None
        client_ids = (claims.get(name) for name in _CLIENT_ID_CLAIMS)
        principal = Principal(
            subject=claims["sub"],
            client_id=next((c for c in client_ids if isinstance(c, str)), None),
            scopes=token_scopes(claims),
            issuer=claims["iss"],
            claims=claims,
        )
        missing = [scope for scope in config.required_scopes if scope not in principal.scopes]
        if missing:
            raise PermissionDenied(f"token lacks required scope: {' '.join(missing)}")
        return principal


def _media_type(value: object) -> str | None:
    """RFC 7515 §4.1.9: `typ` may omit the `application/` prefix and is case-insensitive."""
    if not isinstance(value, str):
        return None
    value = value.lower()
    return value.removeprefix("application/")


_REASONS: dict[type[Exception], str] = {
    jwt.ExpiredSignatureError: "token has expired",
    jwt.ImmatureSignatureError: "token is not yet valid",
    jwt.InvalidAudienceError: "token audience is not accepted",
    jwt.InvalidIssuerError: "token issuer is not accepted",
    jwt.InvalidSignatureError: "token signature is invalid",
}


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"token lacks the {error.claim!r} claim"
    return _REASONS.get(type(error), f"token is invalid ({type(error).__name__})")
