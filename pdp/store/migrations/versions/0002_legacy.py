"""The legacy model (integrations, hand-registered data sources) and its upgrade state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_folded", sa.String(length=128), nullable=False),
        sa.Column("technology", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.JSON(), nullable=False),
        sa.Column("credentials", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("schema_monitoring", sa.JSON(), nullable=False),
        sa.Column(
            "upgrade_state", sa.String(length=16), server_default="not_started", nullable=False
        ),
        sa.Column("display_name", sa.String(length=128), nullable=True),
        sa.Column("upgrade_job_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
        sa.UniqueConstraint("name_folded", name=op.f("uq_integrations_name_folded")),
    )
    op.create_table(
        "legacy_sources",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("integration_id", Id, nullable=False),
        sa.Column("database", sa.Text(), nullable=False),
        sa.Column("schema", sa.Text(), nullable=False),
        sa.Column("table", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=32), server_default="TABLE", nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("owners", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("match_state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("match_reason", sa.Text(), nullable=True),
        sa.Column("matched_path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_legacy_sources_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legacy_sources")),
    )
    op.create_index(op.f("ix_legacy_sources_integration_id"), "legacy_sources", ["integration_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_legacy_sources_integration_id"), table_name="legacy_sources")
    op.drop_table("legacy_sources")
    op.drop_table("integrations")
