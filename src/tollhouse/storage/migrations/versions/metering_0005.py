"""metering: usage events by meter and time across customers (the console's analytics).

Revision ID: metering_0005
Revises: metering_0004
Create Date: 2026-12-07 23:00:00
"""

from __future__ import annotations

from alembic import op

revision = "metering_0005"
down_revision = "metering_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_usage_events_meter"), "usage_events", ["meter", "occurred_at", "model", "value"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_events_meter"), table_name="usage_events")
