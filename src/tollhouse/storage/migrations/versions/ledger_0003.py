"""ledger: entries by kind and time across customers (revenue per day, top spenders).

Revision ID: ledger_0003
Revises: ledger_0002
Create Date: 2026-12-07 23:00:00
"""

from __future__ import annotations

from alembic import op

revision = "ledger_0003"
down_revision = "ledger_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_ledger_entries_kind"),
        "ledger_entries",
        ["kind", "created_at", "account_id", "customer_id", "amount"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_entries_kind"), table_name="ledger_entries")
