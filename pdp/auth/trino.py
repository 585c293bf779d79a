"""Authentication for `trino.dbapi.connect(auth=...)`: a password, or an OAuth client.

The stock `trino.auth.JWTAuthentication` keeps one token for the life of the connection, so a
long-running job starts failing with 401 once it expires. `ClientCredentialsAuthentication`
asks a `TokenSource` on every request instead, and after a 401 drops the token and retries the
request once with a new one. Trino must run `http-server.authentication.type=JWT` for it.

Nothing in the services calls this yet: object sync (next on the roadmap) will crawl Trino's
catalogs with it, which is why it lives here with the other OAuth clients.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import requests
import trino.auth
from requests.auth import AuthBase

from pdp.auth.client import TokenSource
from pdp.auth.config import auth_block
from pdp.auth.credentials import ClientCredentials
from pdp.config.errors import Collector, ConfigError
from pdp.config.fields import Fields
from pdp.config.secret import Secret


@dataclass(frozen=True)
class PasswordLogin:
    """Trino PASSWORD authentication (file, LDAP): HTTP Basic with a user and password."""

    username: str
    password: Secret

    @classmethod
    def from_mapping(
        cls,
        value: object,
        where: str = "auth",
        env: Mapping[str, str] | None = None,
        base: Path | None = None,
        file: str = "",
        inline: bool = False,
    ) -> PasswordLogin:
        """`inline`: `password` may hold the value (see `Fields.secret`)."""
        found = Collector(file)
        keys = ("username", *(("password",) if inline else ()), "passwordEnv", "passwordFile")
        f = Fields(value, where, found, keys, base)
        password = f.secret("password", os.environ if env is None else env, inline)
        if password is None and not any(f.has(k) for k in keys[1:]):
            f.error(keys[1], f"give {' or '.join(keys[1:])}")
        username = f.text("username", required=True)
        if found.errors or password is None:
            raise ConfigError(found.errors)
        return cls(username, password)


TrinoLogin = PasswordLogin | ClientCredentials


def trino_auth_from_config(
    value: object,
    where: str = "auth",
    env: Mapping[str, str] | None = None,
    base: Path | None = None,
    file: str = "",
    inline: bool = False,
) -> TrinoLogin | None:
    """`username` + `passwordEnv`/`passwordFile` means password; `tokenEndpoint` means OAuth;
    `none` means no authentication (see pdp.auth.config for the rule). `inline`: secrets may
    be values (`password`, `clientSecret`: see `Fields.secret`)."""
    block = auth_block(value, where, file)
    if block is None:
        return None
    if isinstance(block, Mapping) and "username" in block:
        if "tokenEndpoint" in block:
            raise ConfigError(f"{where}: give username/password or tokenEndpoint, not both")
        return PasswordLogin.from_mapping(block, where, env, base, file, inline)
    return ClientCredentials.from_mapping(block, where, env, base, file, inline)


def trino_authentication(
    login: TrinoLogin, *, http: httpx.Client | None = None
) -> trino.auth.Authentication:
    """The `auth=` argument for `trino.dbapi.connect`. Over plain http, Trino's client also
    needs `allow_insecure_auth=True` (only where TLS ends in a local proxy)."""
    if isinstance(login, PasswordLogin):
        return trino.auth.BasicAuthentication(login.username, login.password.reveal())
    return ClientCredentialsAuthentication(TokenSource(login, http=http))


class ClientCredentialsAuthentication(trino.auth.Authentication):
    def __init__(self, tokens: TokenSource) -> None:
        self.tokens = tokens

    def set_http_session(self, http_session: requests.Session) -> requests.Session:
        http_session.auth = _RefreshingBearer(self.tokens)
        return http_session

    def get_exceptions(self) -> tuple[Any, ...]:
        return ()

    def close(self) -> None:
        """Close the token source's HTTP client when the connections are done."""
        self.tokens.close()


class _RefreshingBearer(AuthBase):
    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._tokens.token()
        request.headers["Authorization"] = f"Bearer {token}"
        request.register_hook("response", self._retry_on_401)
        return request

    def _retry_on_401(self, response: requests.Response, **send_options: Any) -> requests.Response:
        sent = response.request
        if response.status_code != 401 or getattr(sent, "_pdp_auth_retry", False):
            return response
        rejected = str(sent.headers.get("Authorization", "")).removeprefix("Bearer ")
        self._tokens.invalidate(rejected)
        retry = sent.copy()
        retry.headers["Authorization"] = f"Bearer {self._tokens.token()}"
        retry._pdp_auth_retry = True  # type: ignore[attr-defined]  # marks the one retry
        # Same steps as requests' own HTTPDigestAuth: free the connection, then resend.
        response.content  # noqa: B018 - reads the body so the connection can be reused
        response.close()
        resent = response.connection.send(retry, **send_options)
        resent.history.append(response)
        resent.request = retry
        return resent
