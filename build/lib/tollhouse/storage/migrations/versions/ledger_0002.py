"""ledger: escrow versions, and the check a PostgreSQL write statement makes of itself.

`ledger_accounts.version` counts, on a customer's escrow row, the batches that changed the
customer's accounts (PostgreSQL; see `tollhouse.ledger.writer.cached_postgres`).
`ledger_check(ok, what)` returns true or raises SQLSTATE 40001 (serialization_failure) with
`what` in the message: a single autocommit statement that finds the rows changed under it
aborts itself, writing nothing.

Revision ID: ledger_0002
Revises: ledger_0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ledger_0002"
down_revision = "ledger_0001"
branch_labels = None
depends_on = None

_CHECK = """
CREATE OR REPLACE FUNCTION ledger_check(ok boolean, what text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'ledger: % changed meanwhile', what USING ERRCODE = '40001';
    END IF;
    RETURN true;
END
$$
"""


def upgrade() -> None:
    with op.batch_alter_table("ledger_accounts") as batch:
        batch.add_column(sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CHECK)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_check(boolean, text)")
    with op.batch_alter_table("ledger_accounts") as batch:
        batch.drop_column("version")
