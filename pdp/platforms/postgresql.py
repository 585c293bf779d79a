"""PostgreSQL through psycopg 3.

Store shape: endpoint `{host, port?, database?, maintenanceDatabase?, sslmode?}`, credentials
`{user, password | passwordEnv | passwordFile}`. A stored connection uses what it says and
nothing of the PDP's own: no PGPASSWORD, no .pgpass (`libpq_defaults` off). A grants target
(pdp.yaml) is a libpq `dsn` and an optional `password`; libpq fills in the rest from the PDP's
environment, as for any client the operator runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pdp.config.fields import Fields
from pdp.config.secret import Secret
from pdp.platforms.target import TargetShape

if TYPE_CHECKING:
    import psycopg

ENDPOINT_KEYS = ("host", "port", "database", "maintenanceDatabase", "sslmode")
CREDENTIAL_KEYS = ("user", "password", "passwordEnv", "passwordFile")
TARGET = TargetShape(("dsn", "password"), frozenset(("password",)))  # the dsn says how to log in


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = ""
    port: int = 5432
    user: str = ""
    password: Secret | None = None
    database: str | None = None  # the one database to use; None: any the user may connect to
    maintenance_database: str = "postgres"  # where to find the others
    sslmode: str | None = None
    dsn: str = field(default="", repr=False)  # a libpq connection string; may hold a password
    libpq_defaults: bool = False  # libpq may add PG* variables and ~/.pgpass of the PDP

    @property
    def home(self) -> str:
        """The database to connect to when none is named."""
        return self.database or self.maintenance_database


def from_connection(endpoint: Fields, credentials: Fields, env: Mapping[str, str]) -> Settings:
    return Settings(
        host=endpoint.text("host", required=True),
        port=int(endpoint.number("port", 5432, low=1, high=65535, whole=True)),
        database=endpoint.text("database") or None,
        maintenance_database=endpoint.text("maintenanceDatabase", default="postgres"),
        sslmode=endpoint.text("sslmode") or None,
        user=credentials.text("user", required=True),
        password=credentials.secret("password", env, inline=True),
    )


def from_target(values: Mapping[str, Any]) -> Settings:
    password = values.get("password")
    return Settings(
        dsn=str(values.get("dsn") or ""),
        password=Secret(password) if password else None,
        libpq_defaults=True,
    )


def connect(
    settings: Settings, *, application: str, database: str | None = None, **options: Any
) -> psycopg.Connection[Any]:
    """A connection to `database` (default: the settings' own); `options` are psycopg's
    (`autocommit`, `connect_timeout`, `hostaddr`, ...). Raises psycopg.Error or OSError."""
    import psycopg

    params: dict[str, Any] = {}
    if settings.host:
        params.update(host=settings.host, port=settings.port)
    if settings.user:
        params["user"] = settings.user
    if dbname := database or settings.database:
        params["dbname"] = dbname
    if settings.sslmode:
        params["sslmode"] = settings.sslmode
    if settings.password is not None:
        params["password"] = settings.password.reveal()
    if settings.libpq_defaults:  # the dsn or PGAPPNAME may name the session otherwise
        params["fallback_application_name"] = application
    else:  # the connection's own password or none: never PGPASSWORD or the PDP's .pgpass
        params.setdefault("password", "")
        params.update(passfile="/dev/null", application_name=application)
    return psycopg.connect(settings.dsn, **params, **options)
