"""`check_invariants`: the ledger's self-audit (tests, and `tollhouse doctor`).

Full scans: run it off the hot path. Every problem is one human-readable line; each check
reports at most `MAX_PROBLEMS_PER_CHECK` of them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.ledger.models import (
    AccountKind,
    EntryKind,
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
    fits in it; each hold was resolved at most once (`_hold_movements`); no wallet went below
    zero beyond the largest overdraft limit it was ever given (`_overdrafts`).
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
    problems += await _hold_movements(session)
    problems += await _overdrafts(session)
    return problems


def _escrow_sum(kinds: tuple[EntryKind, ...]) -> Any:
    """SUM of the escrow-side amounts of entries of `kinds` (0 when none)."""
    kind_values = [k.value for k in kinds]
    return func.coalesce(func.sum(case((E.kind.in_(kind_values), E.amount), else_=0)), 0)


async def _hold_movements(session: AsyncSession) -> list[str]:
    """Each hold's escrow movements match its state: a hold is resolved at most once.

    On the customer's escrow account, a hold's entries must be: `hold` entries summing to
    `+amount`; then, if captured, `capture` entries summing to `-captured_amount` and
    `release` entries to `-(amount - captured_amount)` and no `void`; if voided or expired,
    `void` entries summing to `-amount` and no capture or release; if open, nothing else. A
    second capture, a void after a capture (or the reverse) or a lost release breaks this.
    Entries naming a hold that does not exist are reported too.
    """
    cap = MAX_PROBLEMS_PER_CHECK
    moves = (
        select(
            E.hold_id,
            _escrow_sum((EntryKind.HOLD,)).label("held"),
            (-_escrow_sum((EntryKind.CAPTURE,))).label("captured"),
            (-_escrow_sum((EntryKind.RELEASE,))).label("released"),
            (-_escrow_sum((EntryKind.VOID,))).label("voided"),
        )
        .join(accounts_table, A.id == E.account_id)
        .where(E.hold_id.is_not(None), A.kind == AccountKind.ESCROW.value)
        .group_by(E.hold_id)
        .subquery()
    )
    m = moves.c
    held, captured = func.coalesce(m.held, 0), func.coalesce(m.captured, 0)
    released, voided = func.coalesce(m.released, 0), func.coalesce(m.voided, 0)
    is_open = H.status == HoldStatus.OPEN.value
    is_captured = H.status == HoldStatus.CAPTURED.value
    fine = (held == H.amount) & case(
        (is_open, (captured == 0) & (released == 0) & (voided == 0) & H.settled_at.is_(None)),
        (
            is_captured,
            (captured == H.captured_amount)
            & (released == H.amount - H.captured_amount)
            & (voided == 0),
        ),
        else_=(captured == 0) & (released == 0) & (voided == H.amount) & (H.captured_amount == 0),
    )
    rows = await session.execute(
        select(
            H.id,
            H.status,
            H.amount,
            H.captured_amount,
            held.label("held"),
            captured.label("captured"),
            released.label("released"),
            voided.label("voided"),
        )
        .outerjoin(moves, m.hold_id == H.id)
        .where(~fine)
        .limit(cap)
    )
    problems = [
        f"hold {r.id} ({r.status}, amount {r.amount}, captured {r.captured_amount}): escrow "
        f"moved in {r.held}, captured {r.captured}, released {r.released}, voided {r.voided}"
        for r in rows
    ]
    rows = await session.execute(
        select(E.hold_id)
        .distinct()
        .outerjoin(holds_table, H.id == E.hold_id)
        .where(E.hold_id.is_not(None), H.id.is_(None))
        .limit(cap)
    )
    problems += [f"entries name hold {r.hold_id}, which does not exist" for r in rows]
    return problems


async def _overdrafts(session: AsyncSession) -> list[str]:
    """No overdraft line below minus the largest limit it was ever given (`amount`).

    A line may sit below its current bound after its limit was lowered under existing debt
    (`Ledger.set_overdraft_limit`), so the current bound is not the test; the highest limit
    ever set is. Lines written before `amount` was kept fall back to the current bound.
    """
    deepest = -func.coalesce(A.amount, -A.lower_bound)
    rows = await session.execute(
        select(A.id, A.customer_id, A.balance, deepest.label("deepest"))
        .where(
            A.kind == AccountKind.OVERDRAFT.value,
            A.lower_bound.is_not(None),
            A.balance < deepest,
        )
        .limit(MAX_PROBLEMS_PER_CHECK)
    )
    return [
        f"wallet of {r.customer_id}: overdraft line {r.id} at {r.balance}, below the largest "
        f"limit ever set ({r.deepest})"
        for r in rows
    ]
