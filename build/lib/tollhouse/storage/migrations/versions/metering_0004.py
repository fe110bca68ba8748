"""metering: denials, one row per refused call (402, 403 or 429).

Revision ID: metering_0004
Revises: metering_0003
Create Date: 2026-12-07 23:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollhouse.storage.base import UTCDateTime

revision = "metering_0004"
down_revision = "metering_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "denials",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_denials")),
    )
    op.create_index(op.f("ix_denials_customer_id"), "denials", ["customer_id", "occurred_at"])
    op.create_index(op.f("ix_denials_occurred_at"), "denials", ["occurred_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_denials_occurred_at"), table_name="denials")
    op.drop_index(op.f("ix_denials_customer_id"), table_name="denials")
    op.drop_table("denials")
