"""alerts: the credit_alerts table.

Revision ID: alerts_0001
Revises:
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollhouse.storage.base import UTCDateTime

revision = "alerts_0001"
down_revision = None
branch_labels = ("alerts",)
depends_on = "customers_0001"


def upgrade() -> None:
    op.create_table(
        "credit_alerts",
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("threshold_micros", sa.BigInteger(), nullable=True),
        sa.Column("threshold_percent", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_credit_alerts_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_credit_alerts")),
    )


def downgrade() -> None:
    op.drop_table("credit_alerts")
