"""The store's tables (SQLAlchemy Core). Alembic migrations create them; this module is what
the code queries and what the migration test compares the migrated database with.

Names are kept twice where lookups are case-insensitive (`key_folded`, `name_folded`): the
decision core folds names (see `pdp.core.model.fold`), and indexing the folded form keeps the
lookups index-only on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from pdp.store.model import DEFAULT_FAIL_SAFE, DEFAULT_SCHEDULE, ConnectionState


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps go in and come out as aware UTC datetimes on both backends (SQLite keeps
    no zone, so it is stripped on the way in and put back on the way out)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

store_version = Table(
    "store_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("version", BigInteger, nullable=False),
)

connections = Table(
    "connections",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False),
    Column("key_folded", String(128), nullable=False, unique=True),
    Column("technology", String(32), nullable=False),
    Column("endpoint", JSON, nullable=False),  # host, port, account, catalogs... no secrets
    Column("credentials", JSON, nullable=False),  # references or Fernet tokens, see secrets.py
    Column("settings", JSON, nullable=False),  # exclusions, trinoCatalogs, options
    Column("schedule", String(128), nullable=False, server_default=DEFAULT_SCHEDULE),
    Column("state", String(16), nullable=False, server_default=ConnectionState.ACTIVE.value),
    Column("fail_safe_threshold", Float, nullable=False, server_default=str(DEFAULT_FAIL_SAFE)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_sync_at", UTCDateTime),
)

objects = Table(
    "objects",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connection_id", Id, ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    Column("parent_id", Id, ForeignKey("objects.id", ondelete="CASCADE")),  # None: connection
    Column("kind", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("name_folded", Text, nullable=False),
    Column("remote_type", String(64)),
    Column("is_active", Boolean),  # None: inherit
    Column("activate_new_children", Boolean),  # None: inherit
    Column("remote_state", String(16), nullable=False, server_default="present"),
    Column("data_source_id", String(36), unique=True),  # tables; kept across missing->present
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    # tables: digest of the stored columns as sync last wrote them (store.treesync); None: unknown
    Column("columns_digest", String(32)),
    UniqueConstraint("parent_id", "name_folded"),
    Index(None, "connection_id", "kind"),
)

columns = Table(
    "columns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("object_id", Id, ForeignKey("objects.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("nullable", Boolean, nullable=False),
    Column("position", Integer, nullable=False),
    UniqueConstraint("object_id", "name"),
)

object_tags = Table(
    "object_tags",
    metadata,
    Column("object_id", Id, ForeignKey("objects.id", ondelete="CASCADE"), nullable=False),
    Column("tag", Text, nullable=False),
    PrimaryKeyConstraint("object_id", "tag"),
)

column_tags = Table(
    "column_tags",
    metadata,
    Column("column_id", Id, ForeignKey("columns.id", ondelete="CASCADE"), nullable=False),
    Column("tag", Text, nullable=False),
    PrimaryKeyConstraint("column_id", "tag"),
)

object_permissions = Table(
    "object_permissions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("object_id", Id, ForeignKey("objects.id", ondelete="CASCADE"), nullable=False),
    Column("principal_kind", String(8), nullable=False),
    Column("principal", Text, nullable=False),
    Column("role", String(32), nullable=False),
    Column("granted_at", UTCDateTime, nullable=False),
    Column("granted_by", Text),
    UniqueConstraint("object_id", "principal_kind", "principal", "role"),
    Index(None, "principal_kind", "principal"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    # The key, not a foreign key: a job's history outlives its connection's deregistration.
    Column("connection_key", String(128)),
    Column("type", String(16), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("stats", JSON, nullable=False),
    Column("errors", JSON, nullable=False),
    Index(None, "connection_key", "state"),
)

requests = Table(
    "requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("connection_id", Id, ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    Column("object_id", Id, ForeignKey("objects.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("column_name", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("resolved_by", Text),
    Column("job_id", String(36)),
    Index(None, "state"),
    Index(None, "object_id"),
    Index(None, "connection_id"),
)

job_locks = Table(
    "job_locks",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# --- the legacy model (spec §8.1) and its upgrade (§8.2) -----------------------------------

integrations = Table(
    "integrations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),  # the connection name policies use
    Column("name_folded", String(128), nullable=False, unique=True),
    Column("technology", String(32), nullable=False),
    Column("endpoint", JSON, nullable=False),
    Column("credentials", JSON, nullable=False),  # references or Fernet tokens, as connections
    Column("settings", JSON, nullable=False),  # trinoCatalogs...
    Column("schema_monitoring", JSON, nullable=False),  # {"db\x00schema": true}
    Column("upgrade_state", String(16), nullable=False, server_default="not_started"),
    Column("display_name", String(128)),  # the future connection key
    Column("upgrade_job_id", String(36)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

legacy_sources = Table(
    "legacy_sources",
    metadata,
    Column("id", String(36), primary_key=True),  # the data source id, kept by the upgrade
    Column("integration_id", Id, ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False),
    Column("database", Text, nullable=False),
    Column("schema", Text, nullable=False),
    Column("table", Text, nullable=False),
    Column("type", String(32), nullable=False, server_default="TABLE"),
    Column("tags", JSON, nullable=False),
    Column("owners", JSON, nullable=False),  # [{"principal", "principalKind"}]
    Column("active", Boolean, nullable=False),
    Column("match_state", String(16), nullable=False, server_default="pending"),
    Column("match_reason", Text),
    Column("matched_path", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "integration_id"),
)
