"""The ledger tables: accounts, entries (append-only), holds and hold allocations.

Shapes and units:
- every amount and balance is a signed `int` of micros of the row's `currency` (BigInteger);
- an account's `balance` is a cached projection that always equals the sum of its entries;
- a transfer is exactly two entries sharing `transfer_id` and summing to zero.

Account ids of the singleton accounts (per customer and currency: escrow, overdraft; per
currency: issuance, revenue, expired, payments) are derived from their natural key (`account_id_for`),
so creating them is idempotent across processes (`INSERT ... ON CONFLICT DO NOTHING`).
Grant lots get new ids (`ids.new_id`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.ids import base62
from tollhouse.storage.base import Base, UTCDateTime

ENTRY_ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")
"""BIGINT on PostgreSQL; INTEGER on SQLite so the key is the rowid and autoincrements."""


class AccountKind(StrEnum):
    """What an account holds."""

    GRANT = "grant"
    """A customer's lot of granted credits (one account per grant); bound 0."""
    ESCROW = "escrow"
    """A customer's held credits (open holds); bound 0. Its row is the customer's lock."""
    OVERDRAFT = "overdraft"
    """A customer's credit line; bound -limit. Negative balance = drawn (held or owed)."""
    ISSUANCE = "issuance"
    """System: the source of granted credits (goes negative by everything granted)."""
    REVENUE = "revenue"
    """System: captured credits."""
    EXPIRED = "expired"
    """System: credits of lots that expired unspent."""
    PAYMENTS = "payments"
    """System: the source of paid credits (goes negative by what customers paid for through a
    payment provider, net of refunds)."""


SYSTEM_KINDS = frozenset(
    {AccountKind.ISSUANCE, AccountKind.REVENUE, AccountKind.EXPIRED, AccountKind.PAYMENTS}
)
"""Account kinds with `customer_id = NULL`, one per currency."""


class EntryKind(StrEnum):
    """Why money moved. Both entries of a transfer carry the same kind."""

    GRANT = "grant"
    """issuance -> grant lot."""
    HOLD = "hold"
    """grant lot or overdraft -> escrow."""
    CAPTURE = "capture"
    """escrow -> revenue."""
    RELEASE = "release"
    """escrow -> the lot a hold drew from: the part of a hold not captured."""
    VOID = "void"
    """escrow -> the lot a hold drew from: a voided or expired hold."""
    EXPIRE = "expire"
    """grant lot -> expired: the rest of a lot at its expiry."""
    REVOKE = "revoke"
    """grant lot -> issuance: a revoked grant's unheld rest."""
    OVERDRAFT = "overdraft"
    """grant lot -> overdraft: a new grant repays captured overdraft debt."""
    PAYMENT = "payment"
    """payments -> grant lot: credits a customer paid for (a paid grant)."""
    REFUND = "refund"
    """grant lot -> the account that funded it (payments for a paid lot, else issuance):
    credits taken back because their payment was refunded."""


class HoldStatus(StrEnum):
    """Life of a hold: `open` then exactly one of the three final states."""

    OPEN = "open"
    """Credits sit in escrow."""
    CAPTURED = "captured"
    """`captured_amount` went to revenue, the rest back to its lots."""
    VOIDED = "voided"
    """Everything went back to its lots."""
    EXPIRED = "expired"
    """Voided by `sweep` after `expires_at`."""


class GrantSource(StrEnum):
    """Where a grant's credits came from."""

    PROMOTIONAL = "promotional"
    INCLUDED = "included"
    PURCHASED = "purchased"
    MANUAL = "manual"
    REFUND = "refund"
    """Credits given back for a captured charge (`billing.refund`)."""


@lru_cache(maxsize=65536)
def account_id_for(kind: AccountKind, currency: str, customer_id: str | None = None) -> str:
    """The fixed id of a singleton account: `acct_<22 base62 of blake2b(kind, currency, customer)>`.

    Only for escrow and overdraft (per customer and currency) and system accounts (per currency).
    """
    digest = hashlib.blake2b(
        f"{kind.value}\x1f{currency}\x1f{customer_id or ''}".encode(), digest_size=17
    ).digest()
    return "acct_" + base62(int.from_bytes(digest, "big") % 62**22, 22)


class LedgerAccount(Base):
    """An account: a customer's grant lot, escrow or overdraft line, or a system account."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (UniqueConstraint("customer_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """`acct_<22 base62>`."""
    customer_id: Mapped[str | None] = mapped_column(String(32), index=True)
    """Owner; NULL for system accounts. No foreign key (the ledger shards by customer)."""
    currency: Mapped[str] = mapped_column(String(3))
    """Lowercase ISO 4217 code, e.g. `usd`."""
    kind: Mapped[str] = mapped_column(String(16))
    """An `AccountKind` value."""
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    """Micros; always equals the sum of this account's entries."""
    lower_bound: Mapped[int | None] = mapped_column(BigInteger)
    """Lowest allowed balance in micros: 0 (grant, escrow), -limit (overdraft); NULL = unbounded."""
    amount: Mapped[int | None] = mapped_column(BigInteger)
    """Grant lots: the micros granted. Overdraft lines: the highest limit ever set, in micros
    (the line never went below minus this). NULL for other kinds."""
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    """Grant lots: when the rest expires (NULL = never)."""
    priority: Mapped[int] = mapped_column(Integer, default=0)
    """Grant lots: spend order among lots of equal expiry, lower first."""
    source: Mapped[str | None] = mapped_column(String(16))
    """Grant lots: a `GrantSource` value."""
    description: Mapped[str] = mapped_column(Text, default="")
    """Free text shown in history."""
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    """Grant lots: the caller's key; unique per customer."""
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Grant lots: when revoked; a revoked lot is never spent again."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the account was opened (UTC)."""
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    """Escrow rows on PostgreSQL: how many batches changed the customer's accounts in this
    currency (a new lot or credit line, a revoked lot, a new limit; each adds 1 as it writes).
    A process that cached the accounts at version v may write over its cache only while the
    row still says v; balances it checks row by row (`writer/cached_postgres.py`)."""


class LedgerEntry(Base):
    """One side of a transfer. Append-only: never updated, never deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index(None, "customer_id", "id"),)

    id: Mapped[int] = mapped_column(ENTRY_ID_TYPE, primary_key=True, autoincrement=True)
    """Increasing sequence number; the cursor of transaction history."""
    transfer_id: Mapped[str] = mapped_column(String(32))
    """`tr_<22 base62>`, shared by the two entries of a transfer."""
    account_id: Mapped[str] = mapped_column(String(32), index=True)
    """The account this entry changes."""
    customer_id: Mapped[str | None] = mapped_column(String(32))
    """The account's customer (denormalised for history); NULL on system accounts."""
    amount: Mapped[int] = mapped_column(BigInteger)
    """Signed micros: positive credits the account, negative debits it."""
    kind: Mapped[str] = mapped_column(String(16))
    """An `EntryKind` value."""
    hold_id: Mapped[str | None] = mapped_column(String(32))
    """The hold this movement belongs to, if any."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the transfer was written (UTC)."""
    description: Mapped[str] = mapped_column(Text, default="")
    """Free text shown in history."""


_OPEN = text("status = 'open'")


class LedgerHold(Base):
    """A two-phase charge: credits moved to escrow, then captured, voided or expired."""

    __tablename__ = "ledger_holds"
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key"),
        # Open holds only, by expiry (for sweep): settling a hold removes it from this index.
        Index(None, "expires_at", postgresql_where=_OPEN, sqlite_where=_OPEN),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """`hold_<22 base62>`."""
    customer_id: Mapped[str] = mapped_column(String(32))
    """Whose wallet it draws on."""
    currency: Mapped[str] = mapped_column(String(3))
    """Lowercase ISO 4217 code."""
    amount: Mapped[int] = mapped_column(BigInteger)
    """Micros held (> 0)."""
    captured_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    """Micros captured (0 until captured; <= amount)."""
    status: Mapped[str] = mapped_column(String(16))
    """A `HoldStatus` value."""
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    """The caller's key; unique per customer when set."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the hold was placed (UTC)."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """After this, `sweep` voids an open hold (status `expired`)."""
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it was captured, voided or expired."""
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    """Caller's JSON object (e.g. request id, model); the ledger never reads it."""


class LedgerHoldAllocation(Base):
    """Which account a hold drew from, and how much, in draw order."""

    __tablename__ = "ledger_hold_allocations"

    hold_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """The hold."""
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    """0, 1, ...: the order the accounts were drawn (captures consume in this order)."""
    account_id: Mapped[str] = mapped_column(String(32))
    """A grant lot or the overdraft account."""
    amount: Mapped[int] = mapped_column(BigInteger)
    """Micros drawn from that account (> 0)."""


accounts_table = cast(Table, LedgerAccount.__table__)
entries_table = cast(Table, LedgerEntry.__table__)
holds_table = cast(Table, LedgerHold.__table__)
allocations_table = cast(Table, LedgerHoldAllocation.__table__)
