"""Trino through the `trino` client (DB-API over HTTP).

Store shape: endpoint `{host, port? (443 over https, else 8080), httpScheme? (https), verify?
(true, or a CA bundle path), source?}`; credentials a password login (`username`,
`password | passwordEnv | passwordFile`), an OAuth client (pdp.auth.trino: `tokenEndpoint`,
`clientId`, a secret or a certificate) with `user` (the name the cluster maps the token to), or
a user name alone, `{user}` or `{username}` (no authentication: `http` only). Grant sync does
not write to Trino (the sidecar decides there), so there is no grants target shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pdp.auth.trino import PasswordLogin, TrinoLogin, trino_auth_from_config, trino_authentication
from pdp.config.errors import ConfigError
from pdp.config.fields import Fields

if TYPE_CHECKING:
    import trino.auth
    import trino.dbapi

ENDPOINT_KEYS = ("host", "port", "httpScheme", "verify", "source")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    port: int
    user: str  # the session user: the login's, or the one an OAuth token maps to
    login: TrinoLogin | None = None  # None: no authentication (http only)
    http_scheme: str = "https"
    verify: bool | str = True  # or the path of a CA bundle
    source: str = ""  # the client's name in Trino's query log; "" names the application


def from_connection(
    endpoint: Fields, credentials: Mapping[str, Any], env: Mapping[str, str]
) -> Settings:
    """`credentials` is the raw mapping (pdp.auth.trino reads it); its problems are recorded
    with the endpoint's."""
    e = endpoint
    host = e.text("host", required=True)
    scheme = e.choice("httpScheme", ("http", "https"), "https")
    port = int(e.number("port", 443 if scheme == "https" else 8080, low=1, high=65535, whole=True))
    verify: bool | str = True
    raw_verify = e.data.get("verify", True)
    if isinstance(raw_verify, bool) or (isinstance(raw_verify, str) and raw_verify):
        verify = raw_verify
    else:
        e.error("verify", "expected true, false or the path of a CA bundle")
    user, login = _login(e, credentials, scheme, env)
    return Settings(host, port, user, login, scheme, verify, e.text("source"))


def _login(
    e: Fields, credentials: Mapping[str, Any], scheme: str, env: Mapping[str, str]
) -> tuple[str, TrinoLogin | None]:
    where = "trino.credentials"
    if isinstance(credentials, Mapping) and set(credentials) in ({"user"}, {"username"}):
        (name,) = credentials  # a user name alone, as `user` or `username`
        c = Fields(credentials, where, e.found, (name,), e.base)
        user = c.text(name, required=True)
        if scheme == "https":
            c.error(name, "a user without a password or OAuth client: only over http")
        return user, None
    block = dict(credentials) if isinstance(credentials, Mapping) else credentials
    user = str(block.pop("user", "")) if isinstance(block, dict) else ""
    login: TrinoLogin | None = None
    try:
        login = trino_auth_from_config(block, where, env, inline=True)
    except ConfigError as error:
        e.found.errors.extend(error.problems)
    if isinstance(login, PasswordLogin):
        user = user or login.username
    elif not user:
        e.found.error(None, f"{where}.user: name the user the token maps to")
    return user, login


def authentication(settings: Settings) -> trino.auth.Authentication | None:
    """The client's `auth=` for these settings; keep it for the connections it serves (an OAuth
    client's token source lives in it: close it when done, if it has `close`)."""
    if settings.login is None:
        return None  # the client's default: no authentication
    return trino_authentication(settings.login)


def connect(
    settings: Settings,
    *,
    application: str,
    auth: trino.auth.Authentication | None,
    **options: Any,
) -> trino.dbapi.Connection:
    """A DB-API connection (a cheap HTTP session; nothing is sent until a query); `auth` from
    `authentication(settings)`, `options` the client's (timeouts, session properties)."""
    import trino.dbapi

    s = settings
    return trino.dbapi.connect(
        host=s.host,
        port=s.port,
        user=s.user,
        http_scheme=s.http_scheme,
        auth=auth,
        verify=s.verify,
        source=s.source or application,
        **options,
    )
