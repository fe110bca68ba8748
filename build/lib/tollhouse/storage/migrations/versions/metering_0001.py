"""metering: the usage_events table.

Revision ID: metering_0001
Revises:
Create Date: 2026-03-15 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollhouse.storage.base import UTCDateTime

revision = "metering_0001"
down_revision = None
branch_labels = ("metering",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("meter", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_events")),
        sa.UniqueConstraint(
            "customer_id", "event_id", name=op.f("uq_usage_events_customer_id_event_id")
        ),
        sa.CheckConstraint("value >= 0", name=op.f("ck_usage_events_value_non_negative")),
    )
    op.create_index(
        op.f("ix_usage_events_customer_id"),
        "usage_events",
        ["customer_id", "meter", "occurred_at"],
    )
    op.create_index(op.f("ix_usage_events_key_id"), "usage_events", ["key_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_events_key_id"), table_name="usage_events")
    op.drop_index(op.f("ix_usage_events_customer_id"), table_name="usage_events")
    op.drop_table("usage_events")
