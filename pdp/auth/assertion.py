"""`private_key_jwt` client assertions (RFC 7523) and certificate thumbprints (RFC 7515)."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import TYPE_CHECKING

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

if TYPE_CHECKING:
    from pdp.auth.credentials import ClientCertificate

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Entra advises 5-10 minutes and Okta refuses more than an hour; the assertion is used at once.
ASSERTION_LIFETIME = 300


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def x5t(certificate: x509.Certificate) -> str:
    """base64url of the SHA-1 of the DER certificate: the classic Entra header."""
    return _b64url(certificate.fingerprint(hashes.SHA1()))  # an identifier, not a MAC


def x5t_s256(certificate: x509.Certificate) -> str:
    return _b64url(certificate.fingerprint(hashes.SHA256()))


def normalize_thumbprint(text: str) -> str:
    """An operator-pasted SHA-1 thumbprint as `x5t`: portals show hex, headers carry base64url."""
    compact = re.sub(r"[\s:]", "", text)
    if re.fullmatch(r"[0-9A-Fa-f]{40}", compact):
        return _b64url(bytes.fromhex(compact))
    try:
        raw = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 20 or _b64url(raw) != compact:
        raise ValueError("expected a SHA-1 thumbprint as 40 hex digits or 27 base64url characters")
    return compact


def client_assertion(
    certificate: ClientCertificate, client_id: str, audience: str, now: float
) -> str:
    """A fresh signed assertion; `jti` is single use, so build one per token request."""
    issued = int(now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": str(uuid.uuid4()),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    thumbprints = {"x5t": x5t, "x5t#S256": x5t_s256}
    headers: dict[str, object] = {
        h: thumbprints[h](certificate.certificate) for h in certificate.thumbprint_headers
    }
    return jwt.encode(
        claims, certificate.private_key, algorithm=certificate.algorithm, headers=headers
    )
