"""subscriptions: quota_notices, a cap reached once per customer, meter and period.

Revision ID: subscriptions_0002
Revises: subscriptions_0001
Create Date: 2026-12-07 19:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollhouse.storage.base import UTCDateTime

revision = "subscriptions_0002"
down_revision = "subscriptions_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_notices",
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("meter", sa.String(length=64), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("limit", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "meter", "period_end", name=op.f("pk_quota_notices")
        ),
    )


def downgrade() -> None:
    op.drop_table("quota_notices")
