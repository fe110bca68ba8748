"""metering: usage_events.upstream, the catalog upstream that served a gateway call.

Revision ID: metering_0003
Revises: metering_0002
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "metering_0003"
down_revision = "metering_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("upstream", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("upstream")
