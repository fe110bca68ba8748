"""metering: usage_events.session_id, the billed session an event's usage happened in.

Revision ID: metering_0002
Revises: metering_0001
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "metering_0002"
down_revision = "metering_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("session_id", sa.String(length=32), nullable=True))
    op.create_index(
        op.f("ix_usage_events_session_id"), "usage_events", ["session_id", "customer_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_events_session_id"), table_name="usage_events")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("session_id")
