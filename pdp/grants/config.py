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
from pdp.grants.dialect import UNQUOTED, NameCase, Naming
from pdp.grants.postgres import PostgresDialect
from pdp.grants.retry import Backoff
from pdp.grants.session import DbApiSession, SqlSession
from pdp.grants.snowflake import SnowflakeDialect, split_name
from pdp.grants.targets import (
    DatabricksTarget,
    PostgresTarget,
    RetryingSession,
    SnowflakeTarget,
    Target,
    postgres_transient,
    snowflake_transient,
)
from pdp.platforms import databricks, postgresql, snowflake
from pdp.platforms.target import TargetShape
from pdp.policy.model import Technology

DEFAULT_INTERVAL = 3600.0
APPLICATION = "pdp-grant-sync"  # how grant sync names its sessions on the platforms
_COMMON = ("name", "platform", "connections", "rolePrefix", "names", "users")
# The platforms grant sync writes to: how each logs in (pdp.platforms), and grant sync's own keys.
_PLATFORMS: Mapping[Technology, tuple[TargetShape, tuple[str, ...]]] = {
    Technology.SNOWFLAKE: (snowflake.TARGET, ("policySchema",)),
    Technology.DATABRICKS: (databricks.TARGET, ("workers", "policySchema", "warehouseId")),
    Technology.POSTGRESQL: (postgresql.TARGET, ("policySchema",)),
}


@dataclass(frozen=True)
class TargetSpec:
    """One `targets:` entry, validated, secrets resolved."""

    name: str
    platform: Technology
    connections: frozenset[str]
    prefix: str
    naming: Naming
    settings: Mapping[str, Any] = field(default_factory=dict)  # platform keys, secrets resolved
    where: str = ""  # file:line of its `connections:`, for messages

    @contextmanager
    def open(self, backoff: Backoff | None = None) -> Iterator[Target]:
        backoff = backoff or Backoff()
        target = self._connect(backoff)
        try:
            yield target
        finally:
            target.close()

    def _connect(self, backoff: Backoff) -> Target:
        match self.platform:
            case Technology.SNOWFLAKE:
                return _snowflake(self, backoff)
            case Technology.DATABRICKS:
                return _databricks(self, backoff)
            case _:
                return _postgres(self, backoff)


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
    platform = _platform(data, where, found)
    shape, own = _PLATFORMS[platform]
    keys = (*shape.keys, *own)
    secret_keys = [f"{k}{way}" for k in shape.keys if k in shape.secrets for way in ("Env", "File")]
    f = Fields(data, where, found, (*_COMMON, *keys, *secret_keys), base)
    connections = f.strings("connections")
    if not connections:
        found.error(f.line(), f"{where}.connections: name the registry connections it holds")
    prefix = f.text("rolePrefix", default="PDP")
    if not UNQUOTED.fullmatch(prefix):
        found.error(f.line("rolePrefix"), f"{where}.rolePrefix: letters, digits, _ and $ only")
        prefix = "PDP"
    users = f.data.get("users") or {}
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        found.error(f.line("users"), f"{where}.users: expected a mapping of user to platform name")
        users = {}
    settings = _settings(f, keys, shape, env)
    if "policySchema" in settings:
        _check_policy_schema(platform, settings, f)
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


def _settings(
    f: Fields, keys: tuple[str, ...], shape: TargetShape, env: Mapping[str, str]
) -> dict[str, Any]:
    """The entry's platform keys, secrets resolved; an `auth:` choice must name its keys."""
    settings: dict[str, Any] = {}
    for key in keys:
        if key in shape.secrets:
            if (secret := f.secret(key, env)) is not None:
                settings[key] = secret.reveal()
        elif key in f.data:
            settings[key] = f.resolve(key, env)
    if shape.auth:
        auth = settings.get("auth", "")
        if auth not in shape.auth:
            choices = ", ".join(shape.auth)
            f.found.error(f.line("auth"), f"{f.where}.auth: expected one of {choices}")
        for key in shape.auth.get(auth, ()):
            if not settings.get(key):
                f.found.error(f.line(), f"{f.where}: auth {auth} needs {key!r}")
    return settings


def _check_policy_schema(platform: Technology, settings: Mapping[str, Any], f: Fields) -> None:
    schema = settings["policySchema"]
    if platform == Technology.POSTGRESQL:
        if not isinstance(schema, str) or parse_pg_schema(schema) is None:
            f.found.error(
                f.line("policySchema"),
                f"{f.where}.policySchema: expected one schema name (in each governed database, "
                "where grant sync keeps the governed views of masked tables)",
            )
        return
    container = "database" if platform == Technology.SNOWFLAKE else "catalog"
    if not isinstance(schema, str) or parse_policy_schema(schema) is None:
        f.found.error(
            f.line("policySchema"),
            f"{f.where}.policySchema: expected <{container}>.<schema> (where grant sync keeps "
            "the masking and row access policies)",
        )
    if platform == Technology.DATABRICKS and not settings.get("warehouseId"):
        f.found.error(
            f.line("policySchema"),
            f"{f.where}: policySchema needs warehouseId (the SQL warehouse that runs the "
            "statements setting masks and row filters)",
        )


def _platform(data: Any, where: str, found: Collector) -> Technology:
    raw = data.get("platform", "") if isinstance(data, dict) else ""
    platform = next((p for p in _PLATFORMS if p == str(raw).lower()), None)
    if platform is None:
        found.error(line_of(data), f"{where}.platform: expected one of {', '.join(_PLATFORMS)}")
        return Technology.POSTGRESQL  # read on, to report the entry's other problems too
    return platform


# --- opening targets (the only place that constructs platform clients) ------------------------


def _snowflake(spec: TargetSpec, backoff: Backoff) -> Target:
    settings = snowflake.from_target(spec.settings)
    session = DbApiSession(snowflake.connect(settings, application=APPLICATION))
    s = spec.settings
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
    # Short SDK-level retry window: our own Backoff retries per call and keeps going with the
    # other objects, where the SDK default (300 s) would stall the whole run on one object.
    settings = databricks.from_target(spec.settings)
    client = databricks.connect(settings, application=APPLICATION, retry_timeout_seconds=30)
    s = spec.settings
    schema = parse_policy_schema(s["policySchema"]) if s.get("policySchema") else None
    if schema is not None:  # Unity Catalog stores names in lower case
        schema = (schema[0].lower(), schema[1].lower())
    dialect = DatabricksDialect(spec.naming, policy_schema=schema, prefix=spec.prefix.lower())
    workers = int(s.get("workers", 4))
    return DatabricksTarget(
        spec.name,
        spec.connections,
        client,
        dialect,
        backoff,
        workers,
        warehouse=str(s.get("warehouseId") or ""),
    )


def _postgres(spec: TargetSpec, backoff: Backoff) -> Target:
    s = spec.settings
    settings = postgresql.from_target(s)

    def connect(database: str) -> SqlSession:
        client = postgresql.connect(
            settings, application=APPLICATION, database=database or None, autocommit=True
        )
        return RetryingSession(DbApiSession(client), backoff, postgres_transient)

    schema = parse_pg_schema(s["policySchema"]) if s.get("policySchema") else None
    dialect = PostgresDialect(spec.prefix.lower(), spec.naming, policy_schema=schema)
    return PostgresTarget(spec.name, spec.connections, connect, dialect)
