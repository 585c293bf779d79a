"""What a client needs to get a token: the endpoint, its id, and a secret or a certificate."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast, get_args
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from pdp.auth import assertion
from pdp.config import pem
from pdp.config.errors import Collector, ConfigError
from pdp.config.fields import Fields
from pdp.config.secret import Secret

SecretMethod = Literal["client_secret_basic", "client_secret_post"]
SigningAlgorithm = Literal["RS256", "PS256"]
ThumbprintHeader = Literal["x5t", "x5t#S256"]


@dataclass(frozen=True)
class ClientSecret:
    """A shared secret, sent with HTTP Basic (the RFC default) or in the form body."""

    secret: Secret
    method: SecretMethod = "client_secret_basic"

    def __post_init__(self) -> None:
        if self.method not in get_args(SecretMethod):
            raise ConfigError(f"unknown client secret method {self.method!r}")


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate whose private key signs a `private_key_jwt` assertion per token request.

    `assertion_audience` is the assertion's `aud`; None means the token endpoint URL
    (RFC 7523, Entra, Okta). Set it to the issuer for Keycloak >= 26.2 or FAPI 2.0 servers.
    """

    certificate: x509.Certificate = field(repr=False)
    private_key: RSAPrivateKey = field(repr=False)
    algorithm: SigningAlgorithm = "RS256"
    thumbprint_headers: tuple[ThumbprintHeader, ...] = ("x5t",)
    assertion_audience: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, RSAPrivateKey):
            raise ConfigError("the client certificate's private key must be an RSA key")
        if self.private_key.public_key() != self.certificate.public_key():
            raise ConfigError("the private key does not belong to the client certificate")
        if self.algorithm not in get_args(SigningAlgorithm):
            raise ConfigError(f"unsupported assertion algorithm {self.algorithm!r}")
        headers = set(self.thumbprint_headers)
        if not headers or not headers <= set(get_args(ThumbprintHeader)):
            raise ConfigError("thumbprint headers must be x5t, x5t#S256 or both")
        if self.assertion_audience is not None:
            check_endpoint_url(self.assertion_audience, "assertion audience")

    def __repr__(self) -> str:
        return (
            f"ClientCertificate(x5t={assertion.x5t(self.certificate)!r}, "
            f"algorithm={self.algorithm!r}, thumbprint_headers={self.thumbprint_headers!r}, "
            f"assertion_audience={self.assertion_audience!r})"
        )


@dataclass(frozen=True)
class ClientCredentials:
    """OAuth 2.0 client-credentials settings for one outbound connection.

    A token source built from it caches one token, so one source per settings gives one cached
    token per (token endpoint, client, method, scope, resource).
    """

    token_endpoint: str
    client_id: str
    credential: ClientSecret | ClientCertificate
    scope: str | None = None
    resource: str | None = None

    def __post_init__(self) -> None:
        check_endpoint_url(self.token_endpoint, "token endpoint")
        if not self.client_id:
            raise ConfigError("client id must not be empty")
        if self.resource is not None and not urlsplit(self.resource).scheme:
            raise ConfigError(f"resource {self.resource!r} must be an absolute URI")

    @property
    def auth_method(self) -> str:
        if isinstance(self.credential, ClientCertificate):
            return "private_key_jwt"
        return self.credential.method

    @classmethod
    def from_mapping(
        cls,
        value: object,
        where: str = "auth",
        env: Mapping[str, str] | None = None,
        base: Path | None = None,
        file: str = "",
        inline: bool = False,
    ) -> ClientCredentials:
        """Parse the `auth:` block of an outbound client (see docs/auth.md), reporting every
        problem at once.

        `env` defaults to os.environ; relative file paths resolve against `base` (the directory
        of the configuration file `file`), else the working directory. `inline`: secrets may be
        values (`clientSecret`; `certificate`, `privateKey` and `privateKeyPassword` as PEM text
        and its password: see `Fields.secret`), as connection credentials the store decrypted.
        """
        found = Collector(file)
        f = Fields(value, where, found, (*_CLIENT_KEYS, *(_VALUE_KEYS if inline else ())), base)
        env = os.environ if env is None else env
        secret = f.secret("clientSecret", env, inline)
        has_certificate = any(f.has(k) for k in ("certificateFile", "privateKeyFile"))
        has_certificate |= inline and any(f.has(k) for k in ("certificate", "privateKey"))
        credential: ClientSecret | ClientCertificate | None = None
        if secret is not None and has_certificate:
            f.error("certificateFile", "give a client secret or a certificate, not both")
        elif secret is not None:
            for key in _CERTIFICATE_KEYS:
                if f.has(key):
                    f.error(key, "only applies to certificate authentication")
            method = f.choice("clientSecretMethod", get_args(SecretMethod), "client_secret_basic")
            credential = ClientSecret(secret, cast(SecretMethod, method))
        elif has_certificate:
            if f.has("clientSecretMethod"):
                f.error("clientSecretMethod", "only applies to client secrets")
            credential = _certificate_from(f, env, inline)
        elif not (f.has("clientSecretEnv") or f.has("clientSecretFile") or f.has("clientSecret")):
            found.error(
                f.line(),
                f"{where}: give clientSecretEnv or clientSecretFile, "
                "or certificateFile and privateKeyFile",
            )
        token_endpoint = _url(f, "tokenEndpoint") or f.text("tokenEndpoint", required=True)
        resource = f.text("resource") or None
        if resource is not None and not urlsplit(resource).scheme:
            f.error("resource", "must be an absolute URI, e.g. api://pdp")
        scope = " ".join(f.words("scope")) or None
        client_id = f.text("clientId", required=True)
        if found.errors or credential is None:
            raise ConfigError(found.errors)
        return cls(token_endpoint, client_id, credential, scope, resource)


_CERTIFICATE_KEYS = (
    "certificateFile",
    "privateKeyFile",
    "privateKeyPasswordEnv",
    "signingAlgorithm",
    "thumbprintHeaders",
    "thumbprint",
    "assertionAudience",
)
_VALUE_KEYS = ("clientSecret", "certificate", "privateKey", "privateKeyPassword")
_CLIENT_KEYS = (
    "tokenEndpoint",
    "clientId",
    "scope",
    "resource",
    "clientSecretEnv",
    "clientSecretFile",
    "clientSecretMethod",
    *_CERTIFICATE_KEYS,
)


def _certificate_from(f: Fields, env: Mapping[str, str], inline: bool) -> ClientCertificate | None:
    password = f.secret("privateKeyPassword", env, inline)
    certificate_pem, certificate_key = _pem(f, "certificate", inline)
    key_pem, key_key = _pem(f, "privateKey", inline)
    if (
        certificate_pem is None
        or key_pem is None
        or (f.has("privateKeyPasswordEnv") and not password)
    ):
        return None
    try:
        certificate = pem.certificate(certificate_pem)
    except ValueError as exc:
        f.error(certificate_key, str(exc))
        return None
    try:
        key = pem.rsa_private_key(key_pem, password.reveal() if password else None)
    except ValueError as exc:
        f.error(key_key, str(exc))
        return None
    if f.has("thumbprint"):
        try:
            pasted = assertion.normalize_thumbprint(f.text("thumbprint"))
        except ValueError as exc:
            f.error("thumbprint", str(exc))
        else:
            if pasted != assertion.x5t(certificate):
                f.error("thumbprint", f"does not match the certificate in {certificate_key}")
    headers = f.words("thumbprintHeaders") or ("x5t",)
    for header in headers:
        if header not in get_args(ThumbprintHeader):
            f.error("thumbprintHeaders", f"{header!r} is not one of: x5t, x5t#S256")
    algorithm = f.choice("signingAlgorithm", get_args(SigningAlgorithm), "RS256")
    audience = _url(f, "assertionAudience")
    if f.found.errors:
        return None
    try:
        return ClientCertificate(
            certificate,
            key,
            cast(SigningAlgorithm, algorithm),
            cast(tuple[ThumbprintHeader, ...], headers),
            audience,
        )
    except ConfigError as exc:  # the key does not belong to the certificate
        f.error(key_key, str(exc))
        return None


def _pem(f: Fields, name: str, inline: bool) -> tuple[bytes | None, str]:
    """`<name>` as PEM text (a value, with `inline`) or the content of `<name>File`, and the
    key it came from (for errors)."""
    if inline and f.has(name):
        if f.has(f"{name}File"):
            f.error(name, f"give {name} or {name}File, not both")
            return None, name
        text = f.text(name, required=True)
        return (text.encode() if text else None), name
    return f.file_bytes(f"{name}File"), f"{name}File"


def _url(f: Fields, key: str) -> str | None:
    url = f.text(key) or None
    if url is not None and not is_safe_url(url):
        f.error(key, f"{url!r} must be an https URL (http only for loopback)")
    return url


def check_endpoint_url(url: str, what: str) -> None:
    if not is_safe_url(url):
        raise ConfigError(f"{what} {url!r} must be an https URL (http only for loopback)")


def is_safe_url(url: str) -> bool:
    """https everywhere; plain http only to a loopback address, where nothing can listen in."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return False
    return parts.scheme == "https" or _is_loopback(parts.hostname)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
