"""Connections, objects, columns, tags, permissions, jobs, requests, store version

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Each table in turn (the order keeps foreign keys satisfied), then the version row."""
    _connections()
    _job_locks()
    _jobs()
    _store_version()
    _objects()
    _columns()
    _object_permissions()
    _object_tags()
    _requests()
    _column_tags()
    store_version = sa.table("store_version", sa.column("id"), sa.column("version"))
    op.bulk_insert(store_version, [{"id": 1, "version": 0}])


def _connections() -> None:
    op.create_table(
        "connections",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("key_folded", sa.String(length=128), nullable=False),
        sa.Column("technology", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.JSON(), nullable=False),
        sa.Column("credentials", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.String(length=128), server_default="0 1 * * *", nullable=False),
        sa.Column("state", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("fail_safe_threshold", sa.Float(), server_default="0.75", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("key_folded", name=op.f("uq_connections_key_folded")),
    )


def _job_locks() -> None:
    op.create_table(
        "job_locks",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_locks")),
    )


def _jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("connection_key", sa.String(length=128), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_jobs_connection_key_state"), ["connection_key", "state"], unique=False
        )


def _store_version() -> None:
    op.create_table(
        "store_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_version")),
    )


def _objects() -> None:
    op.create_table(
        "objects",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "connection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("name_folded", sa.Text(), nullable=False),
        sa.Column("remote_type", sa.String(length=64), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=True),
        sa.Column("activate_new_children", sa.Boolean(), nullable=True),
        sa.Column("remote_state", sa.String(length=16), server_default="present", nullable=False),
        sa.Column("data_source_id", sa.String(length=36), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_objects_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["objects.id"],
            name=op.f("fk_objects_parent_id_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objects")),
        sa.UniqueConstraint("data_source_id", name=op.f("uq_objects_data_source_id")),
        sa.UniqueConstraint(
            "parent_id", "name_folded", name=op.f("uq_objects_parent_id_name_folded")
        ),
    )
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_objects_connection_id_kind"), ["connection_id", "kind"], unique=False
        )


def _columns() -> None:
    op.create_table(
        "columns",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("nullable", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name=op.f("fk_columns_object_id_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_columns")),
        sa.UniqueConstraint("object_id", "name", name=op.f("uq_columns_object_id_name")),
    )


def _object_permissions() -> None:
    op.create_table(
        "object_permissions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("principal_kind", sa.String(length=8), nullable=False),
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name=op.f("fk_object_permissions_object_id_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_object_permissions")),
        sa.UniqueConstraint(
            "object_id",
            "principal_kind",
            "principal",
            "role",
            name=op.f("uq_object_permissions_object_id_principal_kind_principal_role"),
        ),
    )
    with op.batch_alter_table("object_permissions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_object_permissions_principal_kind_principal"),
            ["principal_kind", "principal"],
            unique=False,
        )


def _object_tags() -> None:
    op.create_table(
        "object_tags",
        sa.Column(
            "object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name=op.f("fk_object_tags_object_id_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("object_id", "tag", name=op.f("pk_object_tags")),
    )


def _requests() -> None:
    op.create_table(
        "requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "connection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("column_name", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_requests_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name=op.f("fk_requests_object_id_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_requests_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_requests_object_id"), ["object_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_requests_connection_id"), ["connection_id"], unique=False
        )


def _column_tags() -> None:
    op.create_table(
        "column_tags",
        sa.Column(
            "column_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["column_id"],
            ["columns.id"],
            name=op.f("fk_column_tags_column_id_columns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("column_id", "tag", name=op.f("pk_column_tags")),
    )


def downgrade() -> None:
    op.drop_table("column_tags")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requests_state"))

    op.drop_table("requests")
    op.drop_table("object_tags")
    with op.batch_alter_table("object_permissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_object_permissions_principal_kind_principal"))

    op.drop_table("object_permissions")
    op.drop_table("columns")
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_objects_connection_id_kind"))

    op.drop_table("objects")
    op.drop_table("store_version")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_connection_key_state"))

    op.drop_table("jobs")
    op.drop_table("job_locks")
    op.drop_table("connections")
