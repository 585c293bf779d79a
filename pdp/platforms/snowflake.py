"""Snowflake through snowflake-connector-python.

Store shape: endpoint `{account, host?, port?, protocol?, warehouse?, role?}`, credentials
`{user, password}` or a key pair `{user, privateKey, privateKeyPassword?}` (PEM text and its
password, values the store decrypted; `privateKeyFile` and the `...Env`/`...File` references
too). The key is parsed when read, so that a bad key names its field, and reaches the connector
as an object, never written to disk. A grants target (pdp.yaml) says how it logs in with
`auth:` (`password`, `keypair` with `privateKeyFile` and `privateKeyPassphrase`, which the
connector reads, or `oauth` with a `token`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pdp.config import pem
from pdp.config.fields import Fields
from pdp.config.secret import Secret
from pdp.platforms.target import TargetShape

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

ENDPOINT_KEYS = ("account", "host", "port", "protocol", "warehouse", "role")
CREDENTIAL_KEYS = (
    "user",
    "password",
    "passwordEnv",
    "passwordFile",
    "privateKey",
    "privateKeyFile",
    "privateKeyPassword",
    "privateKeyPasswordEnv",
    "privateKeyPasswordFile",
)
TARGET = TargetShape(
    (
        "account",
        "user",
        "role",
        "warehouse",
        "auth",
        "password",
        "privateKeyFile",
        "privateKeyPassphrase",
        "token",
    ),
    frozenset(("password", "privateKeyPassphrase", "token")),
    {  # each `auth:` choice and the keys it needs
        "password": ("account", "user", "password"),
        "keypair": ("account", "user", "privateKeyFile"),
        "oauth": ("account", "token"),
    },
)


@dataclass(frozen=True, slots=True)
class Settings:
    account: str
    user: str = ""
    role: str | None = None
    warehouse: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str | None = None
    password: Secret | None = None
    private_key: RSAPrivateKey | None = field(default=None, repr=False)  # parsed, decrypted
    private_key_file: str = ""  # a PEM file the connector reads (grants targets)
    private_key_password: Secret | None = None  # the passphrase of `private_key_file`
    token: Secret | None = None  # an OAuth access token


def from_connection(endpoint: Fields, credentials: Fields, env: Mapping[str, str]) -> Settings:
    e, c = endpoint, credentials
    account = e.text("account", required=True)
    where: dict[str, Any] = {
        k: e.text(k, required=True) for k in ("host", "warehouse", "role") if e.has(k)
    }
    if e.has("port"):
        where["port"] = int(e.number("port", 443, low=1, high=65535, whole=True))
    if e.has("protocol"):
        where["protocol"] = e.choice("protocol", ("http", "https"), "https")
    settings = Settings(account, c.text("user", required=True), **where)
    given = [k for k in ("privateKey", "privateKeyFile") if c.has(k)]
    if len(given) > 1:
        c.error("privateKey", "give privateKey or privateKeyFile, not both")
    elif given:
        return _with_key(settings, c, given[0], env)
    secret = c.secret("password", env, inline=True)
    if secret is None and not (c.has("passwordEnv") or c.has("passwordFile")):
        c.error("password", "give password (or passwordEnv/passwordFile), or privateKey")
    return replace(settings, password=secret)


def _with_key(settings: Settings, c: Fields, name: str, env: Mapping[str, str]) -> Settings:
    if c.has("password") or c.has("passwordEnv") or c.has("passwordFile"):
        c.error(name, "give a password or a key pair, not both")
    password = c.secret("privateKeyPassword", env, inline=True)
    text = c.text(name, required=True) if name == "privateKey" else c.file_bytes(name)
    if not text:
        return settings
    try:  # parsed here, so that a bad key is a configuration error naming its field
        key = pem.rsa_private_key(text, password.reveal() if password else None)
    except ValueError as error:
        c.error(name, str(error))
        return settings
    return replace(settings, private_key=key)


def from_target(values: Mapping[str, Any]) -> Settings:
    """A grants target's values (secrets resolved), its `auth:` choosing the login."""
    v = values
    settings = Settings(
        str(v.get("account") or ""),
        str(v.get("user") or ""),
        role=v.get("role") or None,
        warehouse=v.get("warehouse") or None,
    )
    match v.get("auth"):
        case "password":
            return replace(settings, password=_secret(v, "password"))
        case "keypair":
            return replace(
                settings,
                private_key_file=str(v["privateKeyFile"]),
                private_key_password=_secret(v, "privateKeyPassphrase"),
            )
        case _:
            return replace(settings, token=_secret(v, "token"))


def connect(settings: Settings, *, application: str, **options: Any) -> Any:
    """A logged-in `snowflake.connector` connection; `options` are the connector's
    (timeouts). Raises the connector's errors or OSError."""
    import snowflake.connector

    s = settings
    args: dict[str, Any] = {"account": s.account, "application": application}
    where = {"user": s.user, "role": s.role, "warehouse": s.warehouse, "host": s.host}
    args.update((k, v) for k, v in where.items() if v)
    args.update((k, v) for k, v in (("port", s.port), ("protocol", s.protocol)) if v)
    if s.private_key is not None:
        args.update(authenticator="SNOWFLAKE_JWT", private_key=s.private_key)
    elif s.private_key_file:
        args.update(authenticator="SNOWFLAKE_JWT", private_key_file=s.private_key_file)
        if s.private_key_password is not None:
            args["private_key_file_pwd"] = s.private_key_password.reveal()
    elif s.token is not None:
        args.update(authenticator="oauth", token=s.token.reveal())
    elif s.password is not None:
        args["password"] = s.password.reveal()
    return snowflake.connector.connect(**args, **options)


def _secret(values: Mapping[str, Any], key: str) -> Secret | None:
    value = values.get(key)
    return Secret(str(value)) if value else None
