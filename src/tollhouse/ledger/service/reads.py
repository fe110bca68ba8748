"""Reads: balance, history, holds. Plain async functions over an `AsyncSession`; no writes.

Reads see committed state only (the writer commits before it answers), so a read after an
awaited write always reflects it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.ledger.errors import HoldNotFound
from tollhouse.ledger.models import AccountKind, accounts_table, entries_table, holds_table
from tollhouse.ledger.schemas import Balance, GrantView, HoldView, TransactionView, spend_key

A = accounts_table.c
E = entries_table.c
H = holds_table.c

MAX_PAGE = 500
"""Largest `limit` accepted by `transactions`."""


async def balance(
    session: AsyncSession, customer_id: str, currency: str = "usd", *, now: datetime
) -> Balance:
    """The customer's wallet in `currency` at `now` (all micros).

    `available_micros` sums live lots (not expired at `now`, not revoked); `held_micros` is the
    escrow; `grants` lists live lots with money left, in spend order. An unknown customer has
    an empty wallet (zeros), not an error: the ledger keeps no customer table.
    """
    rows = (
        await session.execute(
            select(accounts_table).where(
                A.customer_id == customer_id,
                A.currency == currency,
                (A.kind != AccountKind.GRANT.value) | (A.balance != 0),
            )
        )
    ).all()
    grants: list[GrantView] = []
    held = limit = used = 0
    for row in rows:
        if row.kind == AccountKind.GRANT:
            view = GrantView.from_row(row)
            if view.remaining > 0 and view.is_live(now):
                grants.append(view)
        elif row.kind == AccountKind.ESCROW:
            held = row.balance
        elif row.kind == AccountKind.OVERDRAFT:
            limit = -(row.lower_bound or 0)
            used = max(0, -row.balance)
    grants.sort(key=spend_key)
    return Balance(
        available_micros=sum(g.remaining for g in grants),
        held_micros=held,
        overdraft_limit_micros=limit,
        grants=grants,
        overdraft_used_micros=used,
        customer_id=customer_id,
        currency=currency,
    )


async def list_grants(
    session: AsyncSession, customer_id: str, *, currency: str | None = None
) -> list[GrantView]:
    """Every grant lot of the customer (live, spent, expired, revoked), newest first."""
    query = select(accounts_table).where(
        A.customer_id == customer_id, A.kind == AccountKind.GRANT.value
    )
    if currency is not None:
        query = query.where(A.currency == currency)
    rows = (await session.execute(query.order_by(A.created_at.desc(), A.id))).all()
    return [GrantView.from_row(row) for row in rows]


async def transactions(
    session: AsyncSession,
    customer_id: str,
    *,
    limit: int = 50,
    before_id: int | None = None,
    kinds: Collection[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[TransactionView]:
    """The customer's side of its history, newest first: entries on its grant lots, escrow and
    overdraft accounts, each with its hold's metadata when it moved a hold (what the hold
    paid for: a model call, a session's fee, a pack). Page with `before_id` = the last `id`
    of the previous page.

    Filters: `kinds` (`EntryKind` values; None = all), `since <= created_at < until`.
    `limit` is clamped to 1..`MAX_PAGE`.
    """
    query = (
        select(
            E.id,
            E.transfer_id,
            E.kind,
            E.amount,
            A.kind.label("account_kind"),
            E.hold_id,
            E.created_at,
            E.description,
            E.account_id,
            A.currency,
            H.metadata.label("hold_metadata"),
        )
        .join(accounts_table, A.id == E.account_id)
        .outerjoin(holds_table, H.id == E.hold_id)
        .where(E.customer_id == customer_id)
        .order_by(E.id.desc())
        .limit(max(1, min(limit, MAX_PAGE)))
    )
    if before_id is not None:
        query = query.where(E.id < before_id)
    if kinds is not None:
        query = query.where(E.kind.in_(list(kinds)))
    if since is not None:
        query = query.where(E.created_at >= since)
    if until is not None:
        query = query.where(E.created_at < until)
    rows = (await session.execute(query)).all()
    return [
        TransactionView(
            id=r.id,
            transfer_id=r.transfer_id,
            kind=r.kind,
            amount=r.amount,
            account_kind=r.account_kind,
            hold_id=r.hold_id,
            created_at=r.created_at,
            description=r.description,
            account_id=r.account_id,
            currency=r.currency,
            hold_metadata=r.hold_metadata,
        )
        for r in rows
    ]


async def get_hold(
    session: AsyncSession, hold_id: str, *, customer_id: str | None = None
) -> HoldView:
    """One hold. Raises `HoldNotFound` if unknown or (given `customer_id`) someone else's."""
    row = (await session.execute(select(holds_table).where(H.id == hold_id))).first()
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise HoldNotFound(f"no hold {hold_id!r}", hold_id=hold_id)
    return HoldView.from_row(row)


async def find_hold(
    session: AsyncSession, customer_id: str, idempotency_key: str
) -> HoldView | None:
    """The customer's hold made with `idempotency_key`, or None."""
    query = select(holds_table).where(
        H.customer_id == customer_id, H.idempotency_key == idempotency_key
    )
    row = (await session.execute(query)).first()
    return None if row is None else HoldView.from_row(row)
