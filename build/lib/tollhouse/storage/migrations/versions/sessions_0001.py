"""sessions: sessions, session_packs.

Revision ID: sessions_0001
Revises:
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollhouse.storage.base import UTCDateTime

revision = "sessions_0001"
down_revision = None
branch_labels = ("sessions",)
depends_on = "customers_0001"


def upgrade() -> None:
    op.create_table(
        "session_packs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("sessions_left", sa.Integer(), nullable=False),
        sa.Column("price_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("hold_id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_session_packs_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_packs")),
        sa.UniqueConstraint(
            "customer_id",
            "idempotency_key",
            name=op.f("uq_session_packs_customer_id_idempotency_key"),
        ),
    )
    op.create_index(
        "ix_session_packs_customer_id_product", "session_packs", ["customer_id", "product"]
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active_product", sa.String(length=64), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("token_cap", sa.BigInteger(), nullable=True),
        sa.Column("tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("fee_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_with", sa.String(length=16), nullable=False),
        sa.Column("pack_id", sa.String(length=32), nullable=True),
        sa.Column("hold_id", sa.String(length=32), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_sessions_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["pack_id"], ["session_packs.id"], name=op.f("fk_sessions_pack_id_session_packs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint(
            "customer_id", "active_product", name=op.f("uq_sessions_customer_id_active_product")
        ),
        sa.UniqueConstraint(
            "customer_id", "idempotency_key", name=op.f("uq_sessions_customer_id_idempotency_key")
        ),
    )
    op.create_index("ix_sessions_customer_id_started_at", "sessions", ["customer_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_customer_id_started_at", table_name="sessions")
    op.drop_table("sessions")
    op.drop_index("ix_session_packs_customer_id_product", table_name="session_packs")
    op.drop_table("session_packs")
