"""Connection credentials without plain-text secrets.

Two ways to keep a secret out of the store, and nothing else is accepted:

* an **encrypted value**: when the operator gives the store a Fernet key, secret-looking keys
  (`password`, `token`, `clientSecret`, `privateKey`...) are stored as Fernet tokens
  (`{"$fernet": "gAAAA..."}`) and decrypted only by `Secrets.reveal`;
* a **reference**: a key ending in `Env` (the name of an environment variable) or `File` (a
  path), read by the PDP in its own process when it connects. Whoever writes one makes the
  PDP send its own environment or files to the connection's endpoint, so a reference is only
  taken when the operator's `control.secretReferences` names it (`References`); an admin API
  body with any other one is refused, and so is a stored one when a crawler is built.

Without a key a secret value is refused (`PlaintextSecret`), and the error never repeats it.
Key material is a value like any other (`privateKey`, `privateKeyPassword`; a `certificate` is
public and kept as given), checked for shape at the door (`check_key_material`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from pdp.config import pem
from pdp.objects.errors import InvalidInput, PlaintextSecret

REDACTED = "[REDACTED]"
ENCRYPTED = "$fernet"
_REFERENCE = re.compile(r".+(Env|File)$")
_ADDRESS = re.compile(r"(endpoint|url|uri)$", re.I)
_SECRET = re.compile(r"password|passphrase|secret|token|privatekey|apikey|credential", re.I)


def is_reference(name: str) -> bool:
    return _REFERENCE.fullmatch(name) is not None


def is_secret_name(name: str) -> bool:
    if _ADDRESS.search(name):  # tokenEndpoint, tokenUrl: where to ask, not a secret
        return False
    return not is_reference(name) and _SECRET.search(name.replace("_", "")) is not None


_INLINE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


@dataclass(frozen=True)
class References:
    """The secret references the operator allows in connection details (pdp.yaml
    `control.secretReferences`): environment variable names and file paths, each a glob
    (`PDP_CONN_*`, `/run/secrets/pdp/*`); none by default."""

    allowed: tuple[str, ...] = ()

    def permits(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed)

    def refused(self, value: Any, where: str) -> tuple[str, Any] | None:
        """The first reference under `value` (an endpoint or credentials mapping) that is not
        allowed, as (field, what it names); None when there is none."""
        if isinstance(value, Mapping):
            for name, item in value.items():
                field = f"{where}.{name}"
                if is_reference(str(name)) and not (isinstance(item, str) and self.permits(item)):
                    return field, item
                if found := self.refused(item, field):
                    return found
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if found := self.refused(item, f"{where}[{index}]"):
                    return found
        elif isinstance(value, str):
            for match in _INLINE_REFERENCE.finditer(value):
                if not self.permits(match.group(0)[2:-1]):
                    return where, match.group(0)
        return None

    def check(self, value: Any, where: str) -> None:
        """Raises `InvalidInput` (400) naming the first reference not allowed, or the first
        PEM value that is not what its name says (`check_key_material`)."""
        found = self.refused(value, where)
        if found is not None:
            field, named = found
            raise InvalidInput(
                field,
                named,
                "the admin API takes secret values, never references to the PDP's own "
                "environment or files (the PDP would read and send them): give the value "
                f"itself{_value_key(field)}; `pdp connections` reads such a name from your own "
                "environment. An operator may allow a name in pdp.yaml "
                "control.secretReferences",
            )
        check_key_material(value, where)


def check_key_material(value: Any, where: str) -> None:
    """PEM values under `value` must be what their names say, before anything is stored or
    sent: `privateKey` an RSA private key (decrypted by `privateKeyPassword` when encrypted),
    `certificate` an X.509 certificate, and with both, the key the certificate's. Raises
    `InvalidInput` (400) naming the field, never repeating the key or its password."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_key_material(item, f"{where}[{index}]")
    if not isinstance(value, Mapping):
        return
    for name, item in value.items():
        check_key_material(item, f"{where}.{name}")
    key, certificate = value.get("privateKey"), value.get("certificate")
    password = value.get("privateKeyPassword")
    parsed_certificate = parsed_key = None
    try:
        if isinstance(certificate, str):
            field = f"{where}.certificate"
            parsed_certificate = pem.certificate(certificate)
        # a password kept sealed or named by an allowed reference is checked when connecting
        if isinstance(key, str) and isinstance(password, str | None) and not _password_ref(value):
            field = f"{where}.privateKey"
            parsed_key = pem.rsa_private_key(key, password)
    except ValueError as error:
        raise InvalidInput(field, REDACTED, str(error)) from None
    if (
        parsed_key
        and parsed_certificate
        and parsed_key.public_key() != parsed_certificate.public_key()
    ):
        raise InvalidInput(
            f"{where}.privateKey", REDACTED, "the private key does not belong to the certificate"
        )


def _password_ref(value: Mapping[str, Any]) -> bool:
    return "privateKeyPasswordEnv" in value or "privateKeyPasswordFile" in value


def _value_key(field: str) -> str:
    name = field.rsplit(".", 1)[-1]
    if is_reference(name):
        return f" as {name.removesuffix('Env').removesuffix('File')}"
    return ""


class Secrets:
    """Seals credentials for the store and reveals them to the code that connects."""

    def __init__(self, key: str | bytes | None = None) -> None:
        self._fernet = Fernet(key) if key else None

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, credentials: Mapping[str, Any], where: str = "credentials") -> dict[str, Any]:
        """What the store keeps: references as given, secret values encrypted (or refused)."""
        sealed: dict[str, Any] = {}
        for name, value in credentials.items():
            field = f"{where}.{name}"
            if isinstance(value, Mapping) and ENCRYPTED not in value:
                sealed[name] = self.seal(value, field)
            elif isinstance(value, Mapping):  # already sealed (a PUT that kept the secret)
                sealed[name] = {ENCRYPTED: str(value[ENCRYPTED])}
            elif is_reference(name):
                if not isinstance(value, str) or not value:
                    raise InvalidInput(field, value, "a reference is a non-empty string")
                sealed[name] = value
            elif is_secret_name(name):
                if self._fernet is None:
                    raise PlaintextSecret(
                        field,
                        REDACTED,
                        "secrets are not stored in plain text, and the store has no encryption "
                        "key: the operator sets storeSecretKeyEnv or storeSecretKeyFile in "
                        "pdp.yaml",
                    )
                token = self._fernet.encrypt(str(value).encode()).decode()
                sealed[name] = {ENCRYPTED: token}
            else:
                sealed[name] = value
        return sealed

    def reveal(self, sealed: Mapping[str, Any], where: str = "credentials") -> dict[str, Any]:
        """Decrypt the encrypted values; references stay references for the caller to read."""
        revealed: dict[str, Any] = {}
        for name, value in sealed.items():
            field = f"{where}.{name}"
            if isinstance(value, Mapping) and ENCRYPTED in value:
                if self._fernet is None:
                    raise InvalidInput(field, REDACTED, "encrypted, and the store has no key")
                try:
                    revealed[name] = self._fernet.decrypt(value[ENCRYPTED].encode()).decode()
                except InvalidToken:
                    raise InvalidInput(field, REDACTED, "cannot decrypt with this key") from None
            elif isinstance(value, Mapping):
                revealed[name] = self.reveal(value, field)
            else:
                revealed[name] = value
        return revealed


def redact(sealed: Mapping[str, Any]) -> dict[str, Any]:
    """For display: encrypted values become "[REDACTED]"; references are not secrets."""
    shown: dict[str, Any] = {}
    for name, value in sealed.items():
        if isinstance(value, Mapping) and ENCRYPTED in value:
            shown[name] = REDACTED
        elif isinstance(value, Mapping):
            shown[name] = redact(value)
        else:
            shown[name] = value
    return shown
