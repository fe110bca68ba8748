"""`check_invariants`: the ledger's self-audit (tests, and `tollhouse doctor` later).

Full scans: run it off the hot path. Every problem is one human-readable line.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.ledger.models import (
    AccountKind,
    HoldStatus,
    accounts_table,
    allocations_table,
    entries_table,
    holds_table,
)

A = accounts_table.c
E = entries_table.c
H = holds_table.c
L = allocations_table.c

MAX_PROBLEMS_PER_CHECK = 100


async def check_invariants(session: AsyncSession) -> list[str]:
    """Every broken invariant, as text; `[]` means the ledger is consistent.

    Checks: each account's balance equals the sum of its entries (and every entry's account
    exists with the same customer); each transfer is two entries summing to zero; grant and
    escrow accounts are not below their lower bound (an overdraft line may be, after its limit
    was lowered under existing debt); balances sum to zero per currency; each escrow equals its
    customer's open holds; each hold's allocations sum to its amount and its captured amount
    fits in it.
    """
    problems: list[str] = []
    cap = MAX_PROBLEMS_PER_CHECK

    sums = select(E.account_id, func.sum(E.amount).label("total")).group_by(E.account_id).subquery()
    total = func.coalesce(sums.c.total, 0)
    rows = await session.execute(
        select(A.id, A.balance, total.label("total"))
        .outerjoin(sums, sums.c.account_id == A.id)
        .where(A.balance != total)
        .limit(cap)
    )
    problems += [f"account {r.id}: balance {r.balance} != sum of entries {r.total}" for r in rows]

    rows = await session.execute(
        select(E.id, E.account_id)
        .outerjoin(accounts_table, A.id == E.account_id)
        .where((A.id.is_(None)) | (A.customer_id.is_distinct_from(E.customer_id)))
        .limit(cap)
    )
    problems += [f"entry {r.id}: account {r.account_id} missing or customer differs" for r in rows]

    rows = await session.execute(
        select(E.transfer_id, func.count().label("n"), func.sum(E.amount).label("total"))
        .group_by(E.transfer_id)
        .having((func.count() != 2) | (func.sum(E.amount) != 0))
        .limit(cap)
    )
    problems += [
        f"transfer {r.transfer_id}: {r.n} entries summing to {r.total} (want 2 summing to 0)"
        for r in rows
    ]

    rows = await session.execute(
        select(A.id, A.kind, A.balance, A.lower_bound)
        .where(
            A.kind.in_([AccountKind.GRANT.value, AccountKind.ESCROW.value]),
            A.lower_bound.is_not(None),
            A.balance < A.lower_bound,
        )
        .limit(cap)
    )
    problems += [
        f"account {r.id} ({r.kind}): balance {r.balance} below lower bound {r.lower_bound}"
        for r in rows
    ]

    rows = await session.execute(
        select(A.currency, func.sum(A.balance).label("total"))
        .group_by(A.currency)
        .having(func.sum(A.balance) != 0)
    )
    problems += [f"currency {r.currency}: balances sum to {r.total}, not 0" for r in rows]

    open_sums = (
        select(H.customer_id, H.currency, func.sum(H.amount).label("held"))
        .where(H.status == HoldStatus.OPEN.value)
        .group_by(H.customer_id, H.currency)
        .subquery()
    )
    held = func.coalesce(open_sums.c.held, 0)
    rows = await session.execute(
        select(A.id, A.balance, held.label("held"))
        .outerjoin(
            open_sums,
            (open_sums.c.customer_id == A.customer_id) & (open_sums.c.currency == A.currency),
        )
        .where(A.kind == AccountKind.ESCROW.value, A.balance != held)
        .limit(cap)
    )
    problems += [f"escrow {r.id}: balance {r.balance} != open holds {r.held}" for r in rows]

    alloc_sums = (
        select(L.hold_id, func.sum(L.amount).label("allocated")).group_by(L.hold_id).subquery()
    )
    allocated = func.coalesce(alloc_sums.c.allocated, 0)
    rows = await session.execute(
        select(H.id, H.amount, H.captured_amount, allocated.label("allocated"))
        .outerjoin(alloc_sums, alloc_sums.c.hold_id == H.id)
        .where((allocated != H.amount) | (H.captured_amount < 0) | (H.captured_amount > H.amount))
        .limit(cap)
    )
    problems += [
        f"hold {r.id}: amount {r.amount}, allocated {r.allocated}, captured {r.captured_amount}"
        for r in rows
    ]
    return problems
