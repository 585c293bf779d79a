"""OAuth 2.0 for the PDP: client-credentials tokens out, bearer-token validation in.

Submodules with heavier dependencies are imported on their own: `pdp.auth.grpc` (interceptors),
`pdp.auth.trino` (Trino client authentication), `pdp.auth.devissuer` (development issuer).
"""

from pdp.auth.client import AsyncTokenSource, TokenSource
from pdp.auth.config import (
    AUTH_OFF,
    auth_block,
    client_auth_from_config,
    server_auth_from_config,
)
from pdp.auth.credentials import ClientCertificate, ClientCredentials, ClientSecret
from pdp.auth.errors import (
    AuthError,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    MalformedTokenResponse,
    PermissionDenied,
    TokenEndpointUnavailable,
    TokenError,
    TokenRequestRejected,
    Unauthenticated,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from pdp.auth.flow import RetryPolicy
from pdp.auth.jwks import RemoteKeys, StaticKeys
from pdp.auth.validator import Principal, Validator, ValidatorConfig
from pdp.config.errors import ConfigError
from pdp.config.secret import Secret

__all__ = [
    "AUTH_OFF",
    "AsyncTokenSource",
    "AuthError",
    "ClientCertificate",
    "ClientCredentials",
    "ClientSecret",
    "ConfigError",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "MalformedTokenResponse",
    "PermissionDenied",
    "Principal",
    "RemoteKeys",
    "RetryPolicy",
    "Secret",
    "StaticKeys",
    "TokenEndpointUnavailable",
    "TokenError",
    "TokenRequestRejected",
    "TokenSource",
    "Unauthenticated",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "Validator",
    "ValidatorConfig",
    "auth_block",
    "client_auth_from_config",
    "server_auth_from_config",
]
