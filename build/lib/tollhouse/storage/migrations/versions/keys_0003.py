"""keys: `api_keys.max_in_flight`, a key's own cap on gateway requests under way at once.

Revision ID: keys_0003
Revises: keys_0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "keys_0003"
down_revision = "keys_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("max_in_flight", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("max_in_flight")
