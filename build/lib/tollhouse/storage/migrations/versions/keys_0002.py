"""keys: `api_keys.successor_id`, the key issued by rotating a key.

Revision ID: keys_0002
Revises: keys_0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "keys_0002"
down_revision = "keys_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("successor_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_keys_successor_id_api_keys"), "api_keys", ["successor_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f("fk_api_keys_successor_id_api_keys"), type_="foreignkey")
        batch.drop_column("successor_id")
