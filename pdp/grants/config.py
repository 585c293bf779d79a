"""The grant sync configuration: which platform accounts to keep in sync, and how to log in.

Documented in docs/grants.md. Secrets are never written in the file: `passwordEnv: VAR` or
`passwordFile: path` (and so on for each secret key), the same syntax as `auth:` blocks. The
older `${ENV_VAR}` references are still resolved, with a deprecation warning, until the next
release."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdp.config.errors import Collector
from pdp.config.fields import Fields
from pdp.config.yamlsource import line_of, read_yaml
from pdp.grants.databricks import DatabricksDialect
from pdp.grants.dialect import NameCase, Naming
from pdp.grants.postgres import PostgresDialect
from pdp.grants.retry import Backoff
from pdp.grants.session import DbApiSession, SqlSession
from pdp.grants.snowflake import PREFIX, SnowflakeDialect, split_name
from pdp.grants.targets import (
    DatabricksTarget,
    PostgresTarget,
    RetryingSession,
    SnowflakeTarget,
    Target,
    postgres_transient,
    snowflake_transient,
)

DEFAULT_INTERVAL = 3600.0
_COMMON = ("name", "platform", "connections", "rolePrefix", "names", "users")
_KEYS = {
    "snowflake": (
        "account",
        "user",
        "role",
        "warehouse",
        "auth",
        "password",
        "privateKeyFile",
        "privateKeyPassphrase",
        "token",
        "policySchema",
    ),
    "databricks": (
        "host",
        "auth",
        "clientId",
        "clientSecret",
        "token",
        "workers",
        "policySchema",
        "warehouseId",
    ),
    "postgresql": ("dsn", "password", "policySchema"),
}
_AUTH = {"snowflake": ("password", "keypair", "oauth"), "databricks": ("oauth-m2m", "token")}


@dataclass(frozen=True)
class TargetSpec:
    """One `targets:` entry, validated, secrets resolved."""

    name: str
    platform: str
    connections: frozenset[str]
    prefix: str
    naming: Naming
    settings: Mapping[str, Any] = field(default_factory=dict)  # platform keys, secrets resolved
    where: str = ""  # file:line of its `connections:`, for messages

    @contextmanager
    def open(self, backoff: Backoff | None = None) -> Iterator[Target]:
        backoff = backoff or Backoff()
        target = _OPEN[self.platform](self, backoff)
        try:
            yield target
        finally:
            target.close()


@dataclass(frozen=True)
class GrantsConfig:
    targets: tuple[TargetSpec, ...] = ()
    interval: float = DEFAULT_INTERVAL  # periodic full reconcile, seconds


def load_grants_config(path: Path, environ: Mapping[str, str] | None = None) -> GrantsConfig:
    return parse_grants(read_yaml(path) or {}, str(path), environ, base=path.parent)


def parse_grants(
    data: Any, file: str, environ: Mapping[str, str] | None = None, base: Path | None = None
) -> GrantsConfig:
    """The targets file, or the `grants:` section of pdp.yaml (same keys). Secret files are
    read relative to `base`, the directory of the file."""
    env = os.environ if environ is None else environ
    found = Collector(file)
    top = Fields(data, "grants", found, ("targets", "reconcileIntervalSeconds"))
    interval = top.number("reconcileIntervalSeconds", DEFAULT_INTERVAL, positive=True)
    specs = [
        _target(item, f"targets[{i}]", found, env, base)
        for i, item in enumerate(top.list("targets"))
    ]
    names = [s.name for s in specs]
    for name in {n for n in names if names.count(n) > 1}:
        found.error(top.line("targets"), f"targets: name {name!r} is used twice")
    found.raise_if_any()
    return GrantsConfig(tuple(specs), interval)


def _target(
    data: Any, where: str, found: Collector, env: Mapping[str, str], base: Path | None
) -> TargetSpec:
    raw = data if isinstance(data, dict) else {}
    platform = str(raw.get("platform", "")).lower()
    if platform not in _KEYS:
        found.error(line_of(data), f"{where}.platform: expected one of {', '.join(_KEYS)}")
        platform = "postgresql"
    keys = _KEYS[platform]
    secret_keys = [f"{k}{way}" for k in keys if k in _SECRETS for way in ("Env", "File")]
    f = Fields(data, where, found, (*_COMMON, *keys, *secret_keys), base)
    connections = f.strings("connections")
    if not connections:
        found.error(f.line(), f"{where}.connections: name the registry connections it holds")
    prefix = f.text("rolePrefix", default="PDP")
    if not PREFIX.fullmatch(prefix):
        found.error(f.line("rolePrefix"), f"{where}.rolePrefix: letters, digits, _ and $ only")
        prefix = "PDP"
    users = f.data.get("users") or {}
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        found.error(f.line("users"), f"{where}.users: expected a mapping of user to platform name")
        users = {}
    settings: dict[str, Any] = {}
    for key in keys:
        if key in _SECRETS:
            if (secret := f.secret(key, env)) is not None:
                settings[key] = secret.reveal()
        elif key in f.data:
            settings[key] = f.resolve(key, env)
    if platform in _AUTH:
        auth = settings.get("auth", "")
        if auth not in _AUTH[platform]:
            choices = ", ".join(_AUTH[platform])
            found.error(f.line("auth"), f"{where}.auth: expected one of {choices}")
        for key in _NEEDS.get((platform, auth), ()):
            if not settings.get(key):
                found.error(f.line(), f"{where}: auth {auth} needs {key!r}")
    if platform in ("snowflake", "databricks") and "policySchema" in settings:
        schema = settings["policySchema"]
        container = "database" if platform == "snowflake" else "catalog"
        if not isinstance(schema, str) or parse_policy_schema(schema) is None:
            found.error(
                f.line("policySchema"),
                f"{where}.policySchema: expected <{container}>.<schema> (where grant sync keeps "
                "the masking and row access policies)",
            )
        if platform == "databricks" and not settings.get("warehouseId"):
            found.error(
                f.line("policySchema"),
                f"{where}: policySchema needs warehouseId (the SQL warehouse that runs the "
                "statements setting masks and row filters)",
            )
    if platform == "postgresql" and "policySchema" in settings:
        schema = settings["policySchema"]
        if not isinstance(schema, str) or parse_pg_schema(schema) is None:
            found.error(
                f.line("policySchema"),
                f"{where}.policySchema: expected one schema name (in each governed database, "
                "where grant sync keeps the governed views of masked tables)",
            )
    return TargetSpec(
        name=f.text("name", required=True),
        platform=platform,
        connections=frozenset(connections),
        prefix=prefix,
        naming=Naming(
            f.enum("names", NameCase, NameCase.UNQUOTED), {str(k): v for k, v in users.items()}
        ),
        settings=settings,
        where=f"{found.file}:{f.line('connections') or f.line() or '?'}",
    )


_SECRETS = frozenset({"password", "privateKeyPassphrase", "token", "clientSecret"})
_NEEDS = {
    ("snowflake", "password"): ("account", "user", "password"),
    ("snowflake", "keypair"): ("account", "user", "privateKeyFile"),
    ("snowflake", "oauth"): ("account", "token"),
    ("databricks", "oauth-m2m"): ("host", "clientId", "clientSecret"),
    ("databricks", "token"): ("host", "token"),
}


# --- opening targets (the only place that constructs platform clients) ------------------------


def _snowflake(spec: TargetSpec, backoff: Backoff) -> Target:
    import snowflake.connector

    s = spec.settings
    options: dict[str, Any] = {"account": s["account"], "application": "pdp-grant-sync"}
    options.update({k: s[k] for k in ("user", "role", "warehouse") if s.get(k)})
    match s["auth"]:
        case "password":
            options["password"] = s["password"]
        case "keypair":
            options["authenticator"] = "SNOWFLAKE_JWT"
            options["private_key_file"] = s["privateKeyFile"]
            if s.get("privateKeyPassphrase"):
                options["private_key_file_pwd"] = s["privateKeyPassphrase"]
        case "oauth":
            options.update(authenticator="oauth", token=s["token"])
    session = DbApiSession(snowflake.connector.connect(**options))
    schema = parse_policy_schema(s["policySchema"]) if s.get("policySchema") else None
    return SnowflakeTarget(
        spec.name,
        spec.connections,
        RetryingSession(session, backoff, snowflake_transient),
        SnowflakeDialect(spec.prefix, spec.naming, policy_schema=schema),
    )


def parse_policy_schema(text: str) -> tuple[str, str] | None:
    """`GOVERNANCE.POLICIES` (unquoted parts fold to upper case, as Snowflake folds them)."""
    try:
        parts = split_name(text.strip())
    except ValueError:
        return None
    if len(parts) != 2 or not all(parts):
        return None
    quoted = [p.startswith('"') for p in text.strip().split(".")]
    database, schema = (p if q else p.upper() for p, q in zip(parts, quoted, strict=False))
    return database, schema


def parse_pg_schema(text: str) -> str | None:
    """`governed` (an unquoted name folds to lower case, as PostgreSQL folds it) or `"Gov"`."""
    try:
        parts = split_name(text.strip())
    except ValueError:
        return None
    if len(parts) != 1 or not parts[0]:
        return None
    return parts[0] if text.strip().startswith('"') else parts[0].lower()


def _databricks(spec: TargetSpec, backoff: Backoff) -> Target:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    s = spec.settings
    # Short SDK-level retry window: our own Backoff retries per call and keeps going with the
    # other objects, where the SDK default (300 s) would stall the whole run on one object.
    common = {"host": s["host"], "retry_timeout_seconds": 30}
    if s["auth"] == "token":
        config = Config(token=s["token"], auth_type="pat", **common)
    else:
        config = Config(
            client_id=s["clientId"],
            client_secret=s["clientSecret"],
            auth_type="oauth-m2m",
            **common,
        )
    schema = parse_policy_schema(s["policySchema"]) if s.get("policySchema") else None
    if schema is not None:  # Unity Catalog stores names in lower case
        schema = (schema[0].lower(), schema[1].lower())
    dialect = DatabricksDialect(spec.naming, policy_schema=schema, prefix=spec.prefix.lower())
    workers = int(s.get("workers", 4))
    return DatabricksTarget(
        spec.name,
        spec.connections,
        WorkspaceClient(config=config),
        dialect,
        backoff,
        workers,
        warehouse=str(s.get("warehouseId") or ""),
    )


def _postgres(spec: TargetSpec, backoff: Backoff) -> Target:
    import psycopg

    s = spec.settings

    def connect(database: str) -> SqlSession:
        options: dict[str, Any] = {"autocommit": True}
        if database:
            options["dbname"] = database
        if s.get("password"):
            options["password"] = s["password"]
        session = DbApiSession(psycopg.connect(s.get("dsn", ""), **options))
        return RetryingSession(session, backoff, postgres_transient)

    schema = parse_pg_schema(s["policySchema"]) if s.get("policySchema") else None
    dialect = PostgresDialect(spec.prefix.lower(), spec.naming, policy_schema=schema)
    return PostgresTarget(spec.name, spec.connections, connect, dialect)


_OPEN = {"snowflake": _snowflake, "databricks": _databricks, "postgresql": _postgres}
