"""PEM key material given as text (connection credentials through the admin API) or read from a
file (pdp.yaml): one parser, one set of messages, which never repeat the key or its password."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey


def _bytes(pem: str | bytes) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem


def rsa_private_key(pem: str | bytes, password: str | None) -> RSAPrivateKey:
    """The RSA private key in `pem`, decrypted with `password`; ValueError says what is wrong."""
    raw = _bytes(pem)
    if b"-----BEGIN" not in raw or b"PRIVATE KEY-----" not in raw:
        raise ValueError("not a PEM private key (-----BEGIN PRIVATE KEY-----)")
    encrypted = b"ENCRYPTED" in raw
    if encrypted and not password:
        raise ValueError("the private key is encrypted: give its password too")
    if not encrypted and password:
        raise ValueError("the private key is not encrypted: give no password for it")
    try:
        key = serialization.load_pem_private_key(raw, password.encode() if password else None)
    except (ValueError, TypeError):
        # Stay generic: the library's message is no help and might hint at the password.
        raise ValueError("not a PEM private key, or the wrong password") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(
            "an RSA private key is needed (key pairs and client assertions sign with RSA)"
        )
    return key


def certificate(pem: str | bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_bytes(pem))
    except ValueError:
        raise ValueError("not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
