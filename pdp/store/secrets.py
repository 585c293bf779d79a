"""Connection credentials without plain-text secrets.

Two ways to keep a secret out of the store, and nothing else is accepted:

* a **reference**: a key ending in `Env` (the name of an environment variable) or `File` (a
  path), as the `auth:` blocks of the configuration already do (`passwordEnv`,
  `clientSecretFile`); the store keeps the reference, the process that connects reads it;
* an **encrypted value**: when the operator gives the store a Fernet key, secret-looking keys
  (`password`, `token`, `clientSecret`, `privateKey`...) are stored as Fernet tokens
  (`{"$fernet": "gAAAA..."}`) and decrypted only by `Secrets.reveal`.

Without a key a secret value is refused (`PlaintextSecret`), and the error never repeats it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

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
                        f"secrets are not stored in plain text: give {name}Env or {name}File, "
                        "or configure the store's encryption key",
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
