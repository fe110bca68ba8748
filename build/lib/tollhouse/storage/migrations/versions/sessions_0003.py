"""sessions: metered (compute) sessions: their columns on `sessions`, and `session_slices`.

Revision ID: sessions_0003
Revises: sessions_0002
Create Date: 2026-12-08 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollhouse.storage.base import UTCDateTime

revision = "sessions_0003"
down_revision = "sessions_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("resource_tier", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("rate_micros_per_hour", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("paid_until", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_heartbeat_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("billed_micros", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("settled_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("low_credit_at", UTCDateTime(), nullable=True))
    op.create_index("ix_sessions_kind_status", "sessions", ["kind", "status"])
    op.create_index("ix_sessions_hold_id", "sessions", ["hold_id"])
    op.create_table(
        "session_slices",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("hold_id", sa.String(length=32), nullable=True),
        sa.Column("captured_micros", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_session_slices_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("session_id", "number", name=op.f("pk_session_slices")),
    )


def downgrade() -> None:
    op.drop_table("session_slices")
    op.drop_index("ix_sessions_hold_id", table_name="sessions")
    op.drop_index("ix_sessions_kind_status", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        for column in (
            "low_credit_at",
            "settled_at",
            "billed_micros",
            "last_heartbeat_at",
            "paid_until",
            "rate_micros_per_hour",
            "resource_tier",
        ):
            batch.drop_column(column)
