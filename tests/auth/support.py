"""Helpers for the auth tests: a real oidc-provider IdP on 127.0.0.1 and test certificates.

The IdP (tests/idp/server.mjs) is started once per session on an ephemeral port. Its signing
key is generated here, so tests can also forge tokens "as the IdP" with chosen claims; tokens
for the positive paths come from the IdP itself.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import hmac
import json
import secrets
import select
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from pdp.auth import ClientCertificate, ClientCredentials, ClientSecret, Secret
from pdp.auth.assertion import x5t, x5t_s256
from pdp.auth.credentials import SecretMethod

IDP_DIR = Path(__file__).resolve().parents[1] / "idp"
PDP_AUDIENCE = "api://pdp"
TRINO_AUDIENCE = "api://trino"
TRINO_TOKEN_TTL = 2  # seconds: short enough to watch a token expire and be replaced
SPECIAL_CLIENT_ID = "a:b%c"
SPECIAL_SECRET = "p@ss w+rd%20:~."


@dataclass(frozen=True)
class GeneratedCertificate:
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey
    certificate_pem: bytes
    private_key_pem: bytes

    def jwk(self) -> dict[str, Any]:
        """The public JWK the IdP registers for the client, with the certificate chain."""
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.certificate.public_key(), as_dict=True)
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {
            **public,
            "use": "sig",
            "kid": x5t_s256(self.certificate),
            "x5c": [base64.b64encode(der).decode()],
            "x5t": x5t(self.certificate),
            "x5t#S256": x5t_s256(self.certificate),
        }

    def client(self, **options: Any) -> ClientCertificate:
        return ClientCertificate(self.certificate, self.private_key, **options)


def make_certificate(common_name: str) -> GeneratedCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return GeneratedCertificate(
        certificate,
        key,
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@dataclass
class Idp:
    """Handle on the running oidc-provider."""

    issuer: str
    signing_key: rsa.RSAPrivateKey
    signing_kid: str
    secrets: dict[str, str]
    certificate: GeneratedCertificate

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def secret_client(
        self,
        client_id: str = "sidecar-basic",
        method: SecretMethod = "client_secret_basic",
        **kw: Any,
    ) -> ClientCredentials:
        credential = ClientSecret(Secret(self.secrets[client_id]), method)
        return ClientCredentials(self.token_endpoint, client_id, credential, **kw)

    def certificate_client(self, **options: Any) -> ClientCredentials:
        scope = options.pop("scope", "pdp.decide")
        resource = options.pop("resource", None)
        return ClientCredentials(
            self.token_endpoint,
            "sidecar-cert",
            self.certificate.client(**options),
            scope=scope,
            resource=resource,
        )

    def forge(
        self,
        *,
        key: Any = None,
        algorithm: str = "RS256",
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed with the IdP's own key (unless `key` is given), claims overridable."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": PDP_AUDIENCE,
            "sub": "forged-client",
            "iat": now,
            "exp": now + 300,
            "scope": "pdp.decide",
            "jti": str(uuid.uuid4()),
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        headers = {"kid": self.signing_kid, **(header or {})}
        return jwt.encode(payload, key or self.signing_key, algorithm=algorithm, headers=headers)

    def jwks(self) -> dict[str, Any]:
        return httpx.get(self.jwks_uri, timeout=5).raise_for_status().json()

    def rotate(self) -> str:
        response = httpx.post(f"{self.issuer}/admin/rotate", timeout=10)
        response.raise_for_status()
        return response.json()["kid"]

    def jwks_outage(self, down: bool) -> None:
        response = httpx.post(f"{self.issuer}/admin/jwks-outage", json={"down": down}, timeout=5)
        response.raise_for_status()


def _ensure_node_modules() -> None:
    if (IDP_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is required for the IdP harness (tests/idp); install Node.js 20+")
    # `npm ci` installs exactly package-lock.json; --prefer-offline reuses the npm cache.
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
        cwd=IDP_DIR,
        timeout=300,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci in {IDP_DIR} failed:\n{done.stderr[-2000:]}")


def _read_ready_line(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else b""
    if not line:
        raise RuntimeError("the IdP harness did not report readiness")
    return json.loads(line)


@contextlib.contextmanager
def start_idp(workdir: Path, certificate: GeneratedCertificate) -> Iterator[Idp]:
    """Run tests/idp/server.mjs with freshly generated keys and clients; stop it on exit."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the IdP harness (tests/idp); install Node.js 20+")
    _ensure_node_modules()
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_jwk = {
        **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key)),
        "kid": "idp-sig-1",
        "use": "sig",
    }
    client_secrets = {
        "sidecar-basic": secrets.token_urlsafe(24),
        "sidecar-post": secrets.token_urlsafe(24),
        "no-client-credentials": secrets.token_urlsafe(24),
        "limited": secrets.token_urlsafe(24),
        SPECIAL_CLIENT_ID: SPECIAL_SECRET,
    }
    common = {"grant_types": ["client_credentials"], "redirect_uris": [], "response_types": []}
    clients = [
        {
            "client_id": "sidecar-basic",
            "client_secret": client_secrets["sidecar-basic"],
            "token_endpoint_auth_method": "client_secret_basic",
            **common,
        },
        {
            "client_id": "sidecar-post",
            "client_secret": client_secrets["sidecar-post"],
            "token_endpoint_auth_method": "client_secret_post",
            **common,
        },
        {
            "client_id": SPECIAL_CLIENT_ID,
            "client_secret": SPECIAL_SECRET,
            "token_endpoint_auth_method": "client_secret_basic",
            **common,
        },
        {
            "client_id": "sidecar-cert",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [certificate.jwk()]},
            **common,
        },
        # Allowed only `openid` among the OIDC scopes: asking for offline_access is invalid_scope.
        {
            "client_id": "limited",
            "client_secret": client_secrets["limited"],
            "scope": "openid",
            **common,
        },
        # A browser-flow client, not allowed the client-credentials grant.
        {
            "client_id": "no-client-credentials",
            "client_secret": client_secrets["no-client-credentials"],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "redirect_uris": ["https://client.example/callback"],
        },
    ]
    config = {
        "signingKeys": [signing_jwk],
        "clients": clients,
        "resources": {
            PDP_AUDIENCE: {"scope": "pdp.decide pdp.read", "ttl": 300},
            TRINO_AUDIENCE: {"scope": "trino", "ttl": TRINO_TOKEN_TTL},
        },
        "defaultResource": PDP_AUDIENCE,
    }
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    log_path = workdir / "idp.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [node, str(IDP_DIR / "server.mjs"), str(config_path)],
            cwd=IDP_DIR,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        try:
            issuer = _read_ready_line(process, timeout=20)["issuer"]
        except RuntimeError:
            raise RuntimeError(log_path.read_text(errors="replace")[-2000:]) from None
        yield Idp(issuer, signing_key, "idp-sig-1", client_secrets, certificate)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


# --- tokens a validator must refuse: name -> (builder, words of the reason) ---------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def standard_claims(idp: Idp, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": idp.issuer,
        "aud": PDP_AUDIENCE,
        "sub": "c",
        "iat": now,
        "exp": now + 300,
        "scope": "pdp.decide",
    }
    return {**claims, **changes}


def _alg_none(idp: Idp) -> str:
    return unsigned({"alg": "none", "kid": idp.signing_kid}, standard_claims(idp)) + "."


def _hs256_with_public_key(idp: Idp) -> str:
    # The classic confusion attack: HMAC keyed with the IdP's public key PEM.
    pem = idp.signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = unsigned({"alg": "HS256", "kid": idp.signing_kid}, standard_claims(idp))
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _tampered(idp: Idp) -> str:
    header, _, signature = idp.forge(scope="pdp.read").split(".")
    return f"{header}.{b64url(json.dumps(standard_claims(idp)).encode())}.{signature}"


def _embedded_jwk(idp: Idp) -> str:
    # PyJWT never uses a key the token brings along (`jwk`, `jku`, `x5u`).
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    return idp.forge(key=attacker, header={"jwk": jwk, "jku": f"{idp.issuer}/jwks"})


REJECTED_TOKENS: dict[str, tuple[Callable[[Idp], str], str]] = {
    "alg none": (_alg_none, "algorithm 'none' is not allowed"),
    "HS256 keyed with the public key": (_hs256_with_public_key, "algorithm 'HS256'"),
    "expired": (lambda i: i.forge(exp=int(time.time()) - 120), "expired"),
    "not yet valid": (lambda i: i.forge(nbf=int(time.time()) + 120), "not yet valid"),
    "issued in the future": (lambda i: i.forge(iat=int(time.time()) + 120), "not yet valid"),
    "wrong audience": (lambda i: i.forge(aud="api://other"), "audience"),
    "wrong issuer": (lambda i: i.forge(iss="https://evil.example"), "issuer"),
    "issuer with trailing slash": (lambda i: i.forge(iss=i.issuer + "/"), "issuer"),
    "unknown kid": (lambda i: i.forge(header={"kid": "nobody"}), "no signing key"),
    "no kid": (lambda i: jwt.encode(standard_claims(i), i.signing_key, "RS256"), "kid"),
    "tampered payload": (_tampered, "signature"),
    "signed by another key": (_embedded_jwk, "signature"),
    "missing exp": (lambda i: i.forge(exp=None), "'exp'"),
    "missing sub": (lambda i: i.forge(sub=None), "'sub'"),
    "missing iat": (lambda i: i.forge(iat=None), "'iat'"),
    "garbage": (lambda i: "not.a.jwt", "well-formed"),
    "oversized": (lambda i: i.forge(pad="x" * 20_000), "too large"),
}


class Recorder:
    """Counts and keeps the requests an httpx client sends (through a real network path)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._clients: list[httpx.Client] = []

    def client(self) -> httpx.Client:
        client = httpx.Client(timeout=5, event_hooks={"request": [self.requests.append]})
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def async_client(self) -> httpx.AsyncClient:
        """The caller closes it (`async with`)."""

        async def record(request: httpx.Request) -> None:
            self.requests.append(request)

        return httpx.AsyncClient(timeout=5, event_hooks={"request": [record]})

    def forms(self) -> list[dict[str, str]]:
        return [dict(parse_qsl(r.content.decode(), keep_blank_values=True)) for r in self.requests]
