"""Operator reads over every customer's money: revenue per UTC day (captured charges and
payments), top customers by spend, and the available credits of a page of customers. Plain
async functions over an `AsyncSession`; no writes. All amounts are micros.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.ledger.models import AccountKind, EntryKind, account_id_for, accounts_table
from tollhouse.ledger.models import entries_table as entries
from tollhouse.storage.base import utc_window_start

A = accounts_table.c
E = entries.c


@dataclass(frozen=True, slots=True)
class RevenueDay:
    """One UTC day's money in: `captured_micros` moved from escrows to revenue (charges for
    calls, sessions and packs), `paid_micros` paid through a payment provider net of refunds
    (what the payments account gave out that day)."""

    day: datetime
    captured_micros: int
    paid_micros: int


@dataclass(frozen=True, slots=True)
class Spender:
    """A customer and what its captured charges came to over a range (micros)."""

    customer_id: str
    spent_micros: int


async def revenue_by_day(
    session: AsyncSession, *, currency: str, start: datetime, end: datetime
) -> list[RevenueDay]:
    """Revenue per UTC day of `[start, end)` in `currency`, oldest first; days without any
    movement are left out. Reads the revenue and payments system accounts' entries."""
    dialect = session.get_bind().dialect.name
    day = utc_window_start(E.created_at, "day", dialect).label("day")
    revenue = account_id_for(AccountKind.REVENUE, currency)
    payments = account_id_for(AccountKind.PAYMENTS, currency)
    rows = await session.execute(
        select(E.account_id, day, func.sum(E.amount).label("amount"))
        .where(
            E.kind.in_([EntryKind.CAPTURE.value, EntryKind.PAYMENT.value, EntryKind.REFUND.value]),
            E.created_at >= start,
            E.created_at < end,
            E.account_id.in_([revenue, payments]),
        )
        .group_by(E.account_id, day)
    )
    per_day: dict[datetime, list[int]] = {}
    for row in rows:
        moved = per_day.setdefault(row.day, [0, 0])
        if row.account_id == revenue:
            moved[0] += int(row.amount or 0)
        else:  # the payments account goes negative by what customers paid
            moved[1] -= int(row.amount or 0)
    return [RevenueDay(day, captured, paid) for day, (captured, paid) in sorted(per_day.items())]


async def top_spenders(
    session: AsyncSession, *, currency: str, start: datetime, end: datetime, limit: int = 10
) -> list[Spender]:
    """The `limit` customers whose captured charges in `[start, end)` are largest, largest
    first (ties by customer id). Counts the escrow side of each capture (the customer's),
    read from `ix_ledger_entries_kind` alone: one row per customer comes back."""
    spent = func.sum(-E.amount).label("spent")
    rows = await session.execute(
        select(E.customer_id, E.account_id, spent)
        .where(
            E.kind == EntryKind.CAPTURE.value,
            E.created_at >= start,
            E.created_at < end,
            E.customer_id.is_not(None),
        )
        .group_by(E.customer_id, E.account_id)
    )
    # A capture's customer side is the customer's escrow, whose id names the currency.
    spenders = [
        Spender(row.customer_id, int(row.spent or 0))
        for row in rows
        if row.account_id == account_id_for(AccountKind.ESCROW, currency, row.customer_id)
    ]
    spenders.sort(key=lambda s: (-s.spent_micros, s.customer_id))
    return spenders[: max(1, limit)]


async def available_by_customer(
    session: AsyncSession, customer_ids: Collection[str], *, currency: str, now: datetime
) -> dict[str, int]:
    """Spendable credits (micros) of each customer in `customer_ids` at `now`: the sum of its
    live grant lots, as `balance` counts `available_micros`. Customers without credits map
    to 0."""
    live = (
        (A.customer_id.in_(list(customer_ids)))
        & (A.kind == AccountKind.GRANT.value)
        & (A.currency == currency)
        & (A.balance > 0)
        & (A.revoked_at.is_(None))
        & ((A.expires_at.is_(None)) | (A.expires_at > now))
    )
    rows = await session.execute(
        select(A.customer_id, func.sum(A.balance).label("total"))
        .where(live)
        .group_by(A.customer_id)
    )
    found = {row.customer_id: int(row.total or 0) for row in rows}
    return {customer_id: found.get(customer_id, 0) for customer_id in customer_ids}
