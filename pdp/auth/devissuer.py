"""A DEVELOPMENT-ONLY token issuer: discovery, JWKS and a client-credentials token endpoint.

It exists so that `pdp up` and the tests exercise the production token path (TokenSource →
token endpoint → Validator) without an external IdP. It keeps its RSA key in memory, knows a
fixed set of clients, binds loopback only, and must never be used in production.

In an event loop:   async with issuer.serving(port) as url: ...
From sync code:     with issuer.running(port) as url: ...
As a plain ASGI app (to host it yourself): issuer.app
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from pdp.auth.credentials import ClientCredentials, ClientSecret, SecretMethod
from pdp.auth.validator import ValidatorConfig
from pdp.config.listen import address
from pdp.config.secret import Secret
from pdp.web import serve_asgi

logger = logging.getLogger("pdp.auth.devissuer")

LOOPBACK = "127.0.0.1"
TOKEN_TYPE = "at+jwt"
_MAX_BODY = 64 * 1024
_START_TIMEOUT = 10.0
_USER = re.compile(r"[A-Za-z0-9._@-]{1,64}")
DEV_USER_CLIENT = "pdp-dev-user"  # the public client minting user tokens (`pdp token`)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class DevIssuer:
    def __init__(
        self,
        clients: Mapping[str, Secret],
        *,
        audience: str = "api://pdp",
        scopes: tuple[str, ...] = ("pdp.decide",),
        token_ttl: int = 300,
        user_client: str | None = None,
    ) -> None:
        """`user_client` names a public client (no secret) that mints tokens for the user the
        request names (`user=alice`): the demo's way to call the admin API as a named user."""
        if not clients:
            raise ValueError("the development issuer needs at least one client")
        self.audience = audience
        self.scopes = scopes
        self.token_ttl = token_ttl
        self._clients = dict(clients)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = f"dev-{secrets.token_hex(6)}"
        self._url: str | None = None
        self.user_client = user_client

    @classmethod
    def with_generated_client(cls, client_id: str = "pdp-dev", **options: Any) -> DevIssuer:
        """One client whose secret is random per start, as `pdp up` uses it."""
        return cls({client_id: Secret(secrets.token_urlsafe(32))}, **options)

    @property
    def issuer(self) -> str:
        if self._url is None:
            raise RuntimeError("the development issuer is not serving yet")
        return self._url

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def client_credentials(
        self,
        client_id: str | None = None,
        *,
        method: SecretMethod = "client_secret_basic",
        scope: str | None = None,
    ) -> ClientCredentials:
        """Settings for the production client path; the first client unless one is named."""
        client_id = client_id or next(iter(self._clients))
        return ClientCredentials(
            self.token_endpoint,
            client_id,
            ClientSecret(self._clients[client_id], method),
            scope=scope or " ".join(self.scopes),
        )

    def validator_config(self, *, required_scopes: tuple[str, ...] = ()) -> ValidatorConfig:
        return ValidatorConfig(
            issuer=self.issuer,
            audience=(self.audience,),
            jwks_uri=self.jwks_uri,
            required_scopes=required_scopes,
            algorithms=("RS256",),
            token_type=TOKEN_TYPE,
        )

    # --- serving -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serving(self, port: int = 0, host: str = LOOPBACK) -> AsyncIterator[str]:
        """Serve on the running event loop; yields the issuer URL, stops on exit."""
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the development issuer binds loopback only, not {host}")
        async with serve_asgi(self.app, host, port) as bound_port:
            self._url = f"http://{address(host, bound_port)}"
            logger.warning(
                "DEVELOPMENT token issuer at %s: for local development and tests only, "
                "never use it in production",
                self._url,
            )
            yield self._url

    @contextlib.contextmanager
    def running(self, port: int = 0, host: str = LOOPBACK) -> Iterator[str]:
        """Serve from a background thread with its own event loop (for sync code and tests)."""
        started: Future[str] = Future()
        stop = threading.Event()

        async def run() -> None:
            try:
                async with self.serving(port, host) as url:
                    started.set_result(url)
                    while not stop.is_set():
                        await asyncio.sleep(0.05)
            except BaseException as error:
                if not started.done():
                    started.set_exception(error)
                raise

        thread = threading.Thread(target=asyncio.run, args=(run(),), name="dev-issuer")
        thread.start()
        try:
            yield started.result(timeout=_START_TIMEOUT)
        finally:
            stop.set()
            thread.join(timeout=_START_TIMEOUT)

    # --- the ASGI application --------------------------------------------------------------

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/.well-known/openid-configuration" and method == "GET":
            await _respond(send, 200, self._discovery())
        elif path == "/jwks" and method == "GET":
            await _respond(send, 200, self._jwks())
        elif path == "/token" and method == "POST":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                body = await _read_body(receive)
                await _respond(
                    send, 200, self._issue(headers.get("authorization"), body), no_store=True
                )
            except _OAuthError as error:
                payload = {"error": error.error, "error_description": error.description}
                await _respond(
                    send,
                    error.status,
                    payload,
                    no_store=True,
                    basic_challenge=(error.status == 401 and "authorization" in headers),
                )
        elif path in ("/token", "/jwks", "/.well-known/openid-configuration"):
            await _respond(send, 405, {"error": "method not allowed"})
        else:
            await _respond(send, 404, {"error": "not found"})

    def _discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "jwks_uri": self.jwks_uri,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": list(self.scopes),
        }

    def _jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self._kid, "use": "sig", "alg": "RS256"}]}

    def _issue(self, authorization: str | None, body: bytes) -> dict[str, Any]:
        form = _parse_form(body)
        if form.get("grant_type") != "client_credentials":
            raise _OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
        if self.user_client is not None and form.get("client_id") == self.user_client:
            return self._issue_user(authorization, form)
        client_id = self._authenticate(authorization, form)
        requested = form.get("scope", "").split()
        unknown = [s for s in requested if s not in self.scopes]
        if unknown:
            raise _OAuthError(400, "invalid_scope", f"unknown scope: {' '.join(unknown)}")
        if form.get("resource", self.audience) != self.audience:
            raise _OAuthError(400, "invalid_target", f"the only resource is {self.audience}")
        granted = " ".join(requested or self.scopes)
        token = self._sign({"sub": client_id, "client_id": client_id, "scope": granted})
        logger.debug("issued a development token to %s (scope %r)", client_id, granted)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
            "scope": granted,
        }

    def _issue_user(self, authorization: str | None, form: Mapping[str, str]) -> dict[str, Any]:
        user = form.get("user", "")
        if authorization is not None or "client_secret" in form:
            raise _OAuthError(400, "invalid_request", "the user client is public: no secret")
        if not _USER.fullmatch(user):
            raise _OAuthError(400, "invalid_request", "name the user: user=<name>")
        token = self._sign(
            {"sub": user, "preferred_username": user, "client_id": self.user_client, "scope": ""}
        )
        logger.info("issued a development token for user %s", user)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl}

    def _sign(self, subject: Mapping[str, Any]) -> str:
        """A token for `subject`'s claims, from this issuer for this audience, valid from now
        for `token_ttl` seconds."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            **subject,
            "iat": now,
            "nbf": now,
            "exp": now + self.token_ttl,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(
            claims, self._key, algorithm="RS256", headers={"kid": self._kid, "typ": TOKEN_TYPE}
        )

    def _authenticate(self, authorization: str | None, form: Mapping[str, str]) -> str:
        if authorization is not None and authorization[:6].lower() == "basic ":
            if "client_secret" in form:
                raise _OAuthError(400, "invalid_request", "use one client authentication method")
            try:
                pair = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise _OAuthError(400, "invalid_request", "malformed Basic credentials") from None
            quoted_id, _, quoted_secret = pair.partition(":")
            # RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
            client_id, secret = unquote_plus(quoted_id), unquote_plus(quoted_secret)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        expected = self._clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected.reveal().encode(), secret.encode()):
            raise _OAuthError(401, "invalid_client", "client authentication failed")
        return client_id


def _parse_form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise _OAuthError(400, "invalid_request", "malformed form body") from None
    if any(len(values) > 1 for values in fields.values()):
        raise _OAuthError(400, "invalid_request", "a parameter is repeated")
    return {name: values[0] for name, values in fields.items()}


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > _MAX_BODY:
            raise _OAuthError(413, "invalid_request", "request body too large")
        if not message.get("more_body"):
            return body


async def _respond(
    send: Send,
    status: int,
    payload: Mapping[str, Any],
    *,
    no_store: bool = False,
    basic_challenge: bool = False,
) -> None:
    headers = [(b"content-type", b"application/json")]
    if no_store:
        headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
    if basic_challenge:
        headers.append((b"www-authenticate", b'Basic realm="pdp-dev", error="invalid_client"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(payload)})
