"""A digest of each table's stored columns, so that a sync compares only the tables whose
listed columns differ from it

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # None on existing rows: the next sync compares those tables in full and records the digest
    op.add_column("objects", sa.Column("columns_digest", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("objects") as batch:
        batch.drop_column("columns_digest")
