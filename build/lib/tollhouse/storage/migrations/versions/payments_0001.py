"""payments: payments, payment_refunds, checkouts, provider_customers, provider_subscriptions,
processed_provider_events, auto_top_ups.

Revision ID: payments_0001
Revises:
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tollhouse.storage.base import UTCDateTime

revision = "payments_0001"
down_revision = None
branch_labels = ("payments",)
depends_on = "customers_0001"


def upgrade() -> None:
    op.create_table(
        "processed_provider_events",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("processed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_id", name=op.f("pk_processed_provider_events")),
    )
    op.create_table(
        "auto_top_ups",
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold_micros", sa.BigInteger(), nullable=False),
        sa.Column("pack", sa.String(length=64), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        sa.Column("fired_count", sa.Integer(), nullable=False),
        sa.Column("last_fired_at", UTCDateTime(), nullable=True),
        sa.Column("last_payment_id", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_auto_top_ups_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_auto_top_ups")),
    )
    op.create_table(
        "checkouts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=True),
        sa.Column("price_micros", sa.BigInteger(), nullable=False),
        sa.Column("credits_micros", sa.BigInteger(), nullable=False),
        sa.Column("bonus_micros", sa.BigInteger(), nullable=False),
        sa.Column("bonus_expiry_days", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_session_id", sa.String(length=255), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_checkouts_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkouts")),
        sa.UniqueConstraint(
            "customer_id", "idempotency_key", name=op.f("uq_checkouts_customer_id_idempotency_key")
        ),
        sa.UniqueConstraint("provider_session_id", name=op.f("uq_checkouts_provider_session_id")),
    )
    op.create_table(
        "payments",
        sa.Column(
            "id",
            sa.String(length=32).with_variant(sa.String(length=32, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=True),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credits_micros", sa.BigInteger(), nullable=False),
        sa.Column("bonus_micros", sa.BigInteger(), nullable=False),
        sa.Column("bonus_expires_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=False),
        sa.Column("checkout_id", sa.String(length=32), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("credits_grant_id", sa.String(length=32), nullable=True),
        sa.Column("bonus_grant_id", sa.String(length=32), nullable=True),
        sa.Column("refunded_micros", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_payments_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "provider", "provider_ref", name=op.f("uq_payments_provider_provider_ref")
        ),
    )
    op.create_index(
        op.f("ix_payments_customer_id"), "payments", ["customer_id", "id"], unique=False
    )
    op.create_index(
        op.f("ix_payments_payment_intent_id"), "payments", ["payment_intent_id"], unique=False
    )
    op.create_table(
        "provider_customers",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("provider_customer_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_provider_customers_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("provider", "customer_id", name=op.f("pk_provider_customers")),
        sa.UniqueConstraint(
            "provider",
            "provider_customer_id",
            name=op.f("uq_provider_customers_provider_provider_customer_id"),
        ),
    )
    op.create_table(
        "provider_subscriptions",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_subscription_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("last_event_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_provider_subscriptions_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint(
            "provider", "provider_subscription_id", name=op.f("pk_provider_subscriptions")
        ),
    )
    op.create_index(
        op.f("ix_provider_subscriptions_customer_id"),
        "provider_subscriptions",
        ["customer_id"],
        unique=False,
    )
    op.create_table(
        "payment_refunds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=False),
        sa.Column("from_micros", sa.BigInteger(), nullable=False),
        sa.Column("to_micros", sa.BigInteger(), nullable=False),
        sa.Column("credits_requested_micros", sa.BigInteger(), nullable=False),
        sa.Column("credits_reversed_micros", sa.BigInteger(), nullable=False),
        sa.Column("unrecovered_micros", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_payment_refunds_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_refunds")),
        sa.UniqueConstraint(
            "payment_id",
            "idempotency_key",
            name=op.f("uq_payment_refunds_payment_id_idempotency_key"),
        ),
        sa.UniqueConstraint(
            "payment_id", "to_micros", name=op.f("uq_payment_refunds_payment_id_to_micros")
        ),
    )


def downgrade() -> None:
    op.drop_table("payment_refunds")
    op.drop_index(
        op.f("ix_provider_subscriptions_customer_id"), table_name="provider_subscriptions"
    )
    op.drop_table("provider_subscriptions")
    op.drop_table("provider_customers")
    op.drop_index(op.f("ix_payments_payment_intent_id"), table_name="payments")
    op.drop_index(op.f("ix_payments_customer_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_table("checkouts")
    op.drop_table("auto_top_ups")
    op.drop_table("processed_provider_events")
