"""invalidations: the cache_invalidations table (the log serving processes poll).

Revision ID: invalidations_0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollhouse.storage.base import UTCDateTime

revision = "invalidations_0001"
down_revision = None
branch_labels = ("invalidations",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_invalidations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_invalidations")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_cache_invalidations_created_at"),
        "cache_invalidations",
        ["created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_cache_invalidations_created_at"), table_name="cache_invalidations")
    op.drop_table("cache_invalidations")
