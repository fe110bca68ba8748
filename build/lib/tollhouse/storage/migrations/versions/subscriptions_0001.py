"""subscriptions: subscriptions, subscription_history, subscription_charges, subscription_grants.

Revision ID: subscriptions_0001
Revises:
Create Date: 2026-03-15 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollhouse.storage.base import UTCDateTime

revision = "subscriptions_0001"
down_revision = None
branch_labels = ("subscriptions",)
depends_on = "customers_0001"


def _autoincrement() -> sa.Column[int]:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("billing_anchor_day", sa.Integer(), nullable=False),
        sa.Column("current_period_start", UTCDateTime(), nullable=False),
        sa.Column("current_period_end", UTCDateTime(), nullable=False),
        sa.Column("trial_end", UTCDateTime(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("scheduled_plan", sa.String(length=64), nullable=True),
        sa.Column("canceled_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("has_payment_method", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_subscriptions_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_subscriptions_customer_id")),
    )
    op.create_index(
        op.f("ix_subscriptions_current_period_end"), "subscriptions", ["current_period_end"]
    )

    op.create_table(
        "subscription_history",
        _autoincrement(),
        sa.Column("subscription_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("from_plan", sa.String(length=64), nullable=True),
        sa.Column("to_plan", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_history_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_history")),
    )
    op.create_index(
        op.f("ix_subscription_history_subscription_id"),
        "subscription_history",
        ["subscription_id", "id"],
    )

    op.create_table(
        "subscription_charges",
        _autoincrement(),
        sa.Column("subscription_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_charges_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_charges")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_subscription_charges_idempotency_key")
        ),
    )
    op.create_index(
        op.f("ix_subscription_charges_subscription_id"),
        "subscription_charges",
        ["subscription_id"],
    )
    op.create_index(
        op.f("ix_subscription_charges_customer_id"), "subscription_charges", ["customer_id"]
    )

    op.create_table(
        "subscription_grants",
        _autoincrement(),
        sa.Column("subscription_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("grant_id", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_grants_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_grants")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_subscription_grants_idempotency_key")),
    )
    op.create_index(
        op.f("ix_subscription_grants_subscription_id"), "subscription_grants", ["subscription_id"]
    )
    op.create_index(
        op.f("ix_subscription_grants_delivered_at"), "subscription_grants", ["delivered_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_subscription_grants_delivered_at"), table_name="subscription_grants")
    op.drop_index(op.f("ix_subscription_grants_subscription_id"), table_name="subscription_grants")
    op.drop_table("subscription_grants")
    op.drop_index(op.f("ix_subscription_charges_customer_id"), table_name="subscription_charges")
    op.drop_index(
        op.f("ix_subscription_charges_subscription_id"), table_name="subscription_charges"
    )
    op.drop_table("subscription_charges")
    op.drop_index(
        op.f("ix_subscription_history_subscription_id"), table_name="subscription_history"
    )
    op.drop_table("subscription_history")
    op.drop_index(op.f("ix_subscriptions_current_period_end"), table_name="subscriptions")
    op.drop_table("subscriptions")
