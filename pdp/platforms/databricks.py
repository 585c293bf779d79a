"""Databricks through the official SDK (`WorkspaceClient`).

Store shape: endpoint `{host}` (the workspace URL), credentials a token (`token | tokenEnv |
tokenFile`) or an OAuth M2M service principal (`clientId`, `clientSecret | clientSecretEnv |
clientSecretFile`). A grants target (pdp.yaml) names the same with an `auth:` switch
(`token`, `oauth-m2m`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pdp.config.fields import Fields
from pdp.config.secret import Secret
from pdp.platforms.target import TargetShape

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

ENDPOINT_KEYS = ("host",)
CREDENTIAL_KEYS = (
    "token",
    "tokenEnv",
    "tokenFile",
    "clientId",
    "clientSecret",
    "clientSecretEnv",
    "clientSecretFile",
)
TARGET = TargetShape(
    ("host", "auth", "clientId", "clientSecret", "token"),
    frozenset(("clientSecret", "token")),
    {  # each `auth:` choice and the keys it needs
        "oauth-m2m": ("host", "clientId", "clientSecret"),
        "token": ("host", "token"),
    },
)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    token: Secret | None = None  # a personal access token, or
    client_id: str = ""  # an OAuth M2M service principal and its secret
    client_secret: Secret | None = None


def from_connection(endpoint: Fields, credentials: Fields, env: Mapping[str, str]) -> Settings:
    c = credentials
    host = endpoint.text("host", required=True)
    client_id = c.text("clientId")
    if client_id:
        secret = c.secret("clientSecret", env, inline=True)
        if secret is None and not (c.has("clientSecretEnv") or c.has("clientSecretFile")):
            c.error("clientSecret", "give clientSecret (or clientSecretEnv/File) with clientId")
        if c.has("token") or c.has("tokenEnv") or c.has("tokenFile"):
            c.error("clientId", "give a token or an OAuth client, not both")
        return Settings(host, client_id=client_id, client_secret=secret)
    token = c.secret("token", env, inline=True)
    if token is None and not (c.has("tokenEnv") or c.has("tokenFile")):
        c.error("token", "give token (or tokenEnv/tokenFile), or clientId with clientSecret")
    return Settings(host, token=token)


def from_target(values: Mapping[str, Any]) -> Settings:
    """A grants target's values (secrets resolved), its `auth:` choosing the login."""
    host = str(values.get("host") or "")
    if values.get("auth") == "token":
        return Settings(host, token=Secret(str(values["token"])))
    secret = Secret(str(values["clientSecret"]))
    return Settings(host, client_id=str(values["clientId"]), client_secret=secret)


def connect(settings: Settings, *, application: str, **options: Any) -> WorkspaceClient:
    """A workspace client; `options` are the SDK Config's (timeouts). Making it resolves the
    OAuth endpoints, so it may raise the SDK's errors."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    login: dict[str, Any]
    if settings.token is not None:
        login = {"token": settings.token.reveal(), "auth_type": "pat"}
    else:
        secret = settings.client_secret.reveal() if settings.client_secret else None
        login = {"client_id": settings.client_id, "client_secret": secret}
        login["auth_type"] = "oauth-m2m"
    config = Config(host=settings.host, product=application, **login, **options)
    return WorkspaceClient(config=config)
