"""Load phase of a batch: resolve, lock and read the rows its operations touch.

Locking protocol (PostgreSQL): every write to a customer's accounts and holds happens while its
escrow row (one per customer and currency) is locked with `SELECT ... FOR UPDATE`, taken for all
the batch's customers in one statement ordered by id, so processes never deadlock on them. The
accounts are read by a *later* statement, so a batch that waited for the lock sees everything the
previous holder committed (READ COMMITTED takes a fresh snapshot per statement). The lock also
reads each escrow row's `version`, which a batch that changes the customer's accounts (not just
their balances) advances by one (`flush.bumped_escrows`), so a process that cached them can
tell whether they are still the accounts it knows (`cached_postgres`). System accounts are
only updated by `balance + delta`, at the end, in id order (see `flush`).

Holds named by id (capture, void) come from this process's `HoldCache` or are read before the
lock (that read names the customer to lock). Their customer and allocations never change; a
status another process changed meanwhile is caught by the guarded write, and the op is retried
from the database.

SQLite: the one connection serialises every writer of the process, so no lock is taken; a second
process on the same file is still safe through the guarded writes (it is retried, not trusted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, String, and_, any_, bindparam, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from tollhouse.ledger.models import (
    SYSTEM_KINDS,
    AccountKind,
    EntryKind,
    HoldStatus,
    account_id_for,
    accounts_table,
    allocations_table,
    entries_table,
    holds_table,
)
from tollhouse.ledger.writer.ops import (
    CaptureOp,
    GrantOp,
    HoldOp,
    Op,
    OverdraftOp,
    ReverseOp,
    RevokeOp,
    SweepCustomerOp,
    VoidOp,
)
from tollhouse.ledger.writer.state import Account, BatchState, Hold, HoldCache

A = accounts_table.c
H = holds_table.c
L = allocations_table.c


def _account(row: Any) -> Account:
    """An `Account` from a `ledger_accounts` row."""
    return Account(
        id=row.id,
        customer_id=row.customer_id,
        currency=row.currency,
        kind=row.kind,
        balance=row.balance,
        lower_bound=row.lower_bound,
        amount=row.amount,
        expires_at=row.expires_at,
        priority=row.priority,
        source=row.source,
        description=row.description,
        idempotency_key=row.idempotency_key,
        revoked_at=row.revoked_at,
        created_at=row.created_at,
        start_balance=row.balance,
    )


async def _ensure_singletons(
    conn: AsyncConnection, rows: list[dict[str, Any]], is_postgres: bool
) -> None:
    """INSERT the missing escrow/system accounts; existing ones are left alone (any process)."""
    rows.sort(key=lambda r: r["id"])  # one insertion order everywhere: no deadlock
    dialect_insert = postgresql.insert if is_postgres else sqlite.insert
    await conn.execute(dialect_insert(accounts_table).on_conflict_do_nothing(), rows)


def _singleton_row(
    kind: AccountKind, currency: str, customer_id: str | None, state: BatchState
) -> dict[str, Any]:
    return {
        "id": account_id_for(kind, currency, customer_id),
        "customer_id": customer_id,
        "currency": currency,
        "kind": kind.value,
        "balance": 0,
        "lower_bound": None if kind in SYSTEM_KINDS else 0,
        "amount": None,
        "expires_at": None,
        "priority": 0,
        "source": None,
        "description": "",
        "idempotency_key": None,
        "revoked_at": None,
        "created_at": state.now,
    }


def _any(column: Any, values: Iterable[str], is_postgres: bool) -> ColumnElement[bool]:
    """`column IN values`: one array parameter on PostgreSQL (one statement for any count)."""
    if is_postgres:
        return cast(
            ColumnElement[bool],
            column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(String))),
        )
    return cast(ColumnElement[bool], column.in_(list(values)))


_IDS = postgresql.ARRAY(String)

_PG_LOCK = (
    # set_config(..., true) = SET LOCAL: the rest of this transaction plans each statement for
    # its parameters, so no plan cached while a table was tiny (seq scan) outlives its growth.
    select(A.id, A.version, func.set_config("plan_cache_mode", "force_custom_plan", True))
    .where(A.id == any_(bindparam("ids", type_=_IDS)))
    .order_by(A.id)
    .with_for_update()
)
_LIVE_ROWS = or_(A.kind != AccountKind.GRANT.value, A.balance != 0)
_PG_ACCOUNTS = select(accounts_table).where(
    A.customer_id == any_(bindparam("customer_ids", type_=_IDS)), _LIVE_ROWS
)
_SQLITE_ACCOUNTS = select(accounts_table).where(
    A.customer_id.in_(bindparam("customer_ids", expanding=True)), _LIVE_ROWS
)
"""Every non-lot account of the customers, and their lots that hold money (prebuilt: hot)."""


def copy_hold(hold: Hold) -> Hold:
    """A batch-private copy of a cached hold (allocations never change once written)."""
    return Hold(
        id=hold.id,
        customer_id=hold.customer_id,
        currency=hold.currency,
        amount=hold.amount,
        captured_amount=hold.captured_amount,
        status=hold.status,
        idempotency_key=hold.idempotency_key,
        created_at=hold.created_at,
        expires_at=hold.expires_at,
        settled_at=hold.settled_at,
        metadata=hold.metadata,
        allocations=hold.allocations,
    )


async def load(
    conn: AsyncConnection,
    ops: Sequence[Op],
    state: BatchState,
    *,
    is_postgres: bool,
    known_accounts: set[str],
    hold_cache: HoldCache,
) -> set[str]:
    """Fill `state` with the rows of every customer `ops` involve, after locking them.

    Holds named by id come from `hold_cache` (holds this process wrote) or are read before the
    lock: their customer never changes, and a status changed meanwhile by another process is
    caught by the guarded write. Everything else is read after the lock.

    Returns the singleton account ids this transaction created-or-confirmed, for the caller to
    add to `known_accounts` once it commits.
    """
    pairs: set[tuple[str, str]] = set()
    hold_ids: set[str] = set()
    grant_ids: set[str] = set()
    for op in ops:
        if isinstance(op, CaptureOp | VoidOp):
            hold_ids.add(op.hold_id)
        elif isinstance(op, RevokeOp | ReverseOp):
            grant_ids.add(op.grant_id)
        else:
            assert isinstance(op, HoldOp | GrantOp | SweepCustomerOp | OverdraftOp)
            pairs.add((op.customer_id, op.currency))
    uncached = set()
    for hold_id in hold_ids:
        cached = hold_cache.get(hold_id)
        if cached is None:
            uncached.add(hold_id)
        else:
            state.add_hold(copy_hold(cached))
    if uncached:
        await _read_holds(conn, state, _any(H.id, uncached, is_postgres))
    pairs.update((h.customer_id, h.currency) for h in state.holds.values())
    if grant_ids:
        result = await conn.execute(
            select(A.customer_id, A.currency).where(
                _any(A.id, grant_ids, is_postgres), A.kind == AccountKind.GRANT.value
            )
        )
        pairs.update((r.customer_id, r.currency) for r in result)
    if not pairs:
        return set()

    escrow_ids = sorted(account_id_for(AccountKind.ESCROW, cur, cid) for cid, cur in pairs)
    # Only ops that can leave money behind create the customer's escrow (its lock row) and the
    # system accounts: a refused hold on an unknown customer stores nothing at all. A customer
    # with any lot or credit line has an escrow, so holds always find one to lock.
    creating = {
        (op.customer_id, op.currency) for op in ops if isinstance(op, GrantOp | OverdraftOp)
    }
    wanted = [_singleton_row(AccountKind.ESCROW, cur, cid, state) for cid, cur in creating]
    currencies = {cur for _, cur in creating} | {h.currency for h in state.holds.values()}
    currencies |= {op.currency for op in ops if isinstance(op, SweepCustomerOp)}
    if grant_ids:
        currencies |= {cur for _, cur in pairs}
    for currency in currencies:
        wanted.extend(_singleton_row(kind, currency, None, state) for kind in SYSTEM_KINDS)
    missing = [row for row in wanted if row["id"] not in known_accounts]
    if missing:
        await _ensure_singletons(conn, missing, is_postgres)
    if is_postgres:
        locked = await conn.execute(_PG_LOCK, {"ids": escrow_ids})
        state.versions.update((row.id, row.version) for row in locked)
    customer_ids = list({cid for cid, _ in pairs})
    result = await conn.execute(
        _PG_ACCOUNTS if is_postgres else _SQLITE_ACCOUNTS, {"customer_ids": customer_ids}
    )
    for row in result:
        state.add_account(_account(row))

    await _load_holds_after_lock(conn, ops, state, is_postgres)
    await _load_missing_accounts(conn, ops, state, grant_ids)
    await _load_overdraft_held(conn, ops, state)
    await _load_reversals(conn, ops, state)
    return {row["id"] for row in wanted}


async def _read_holds(
    conn: AsyncConnection, state: BatchState, condition: ColumnElement[bool]
) -> None:
    """Holds matching `condition` with their allocations, into `state` (first read wins)."""
    query = (
        select(
            holds_table,
            L.seq,
            L.account_id.label("alloc_account_id"),
            L.amount.label("alloc_amount"),
        )
        .outerjoin(allocations_table, L.hold_id == H.id)
        .where(condition)
        .order_by(H.id, L.seq)
    )
    result = await conn.execute(query)
    fresh: set[str] = set()
    for row in result:
        hold = state.holds.get(row.id)
        if hold is None:
            fresh.add(row.id)
            hold = Hold(
                id=row.id,
                customer_id=row.customer_id,
                currency=row.currency,
                amount=row.amount,
                captured_amount=row.captured_amount,
                status=row.status,
                idempotency_key=row.idempotency_key,
                created_at=row.created_at,
                expires_at=row.expires_at,
                settled_at=row.settled_at,
                metadata=row.metadata or {},
            )
            state.add_hold(hold)
        if row.alloc_account_id is not None and row.id in fresh:
            hold.allocations.append((row.alloc_account_id, row.alloc_amount))


async def _load_holds_after_lock(
    conn: AsyncConnection, ops: Sequence[Op], state: BatchState, is_postgres: bool
) -> None:
    """Holds matched by idempotency key, and open holds a sweep may expire."""
    conditions: list[ColumnElement[bool]] = []
    keyed = {
        (op.customer_id, op.idempotency_key)
        for op in ops
        if isinstance(op, HoldOp) and op.idempotency_key is not None
    }
    if keyed:
        conditions.append(
            and_(
                _any(H.customer_id, {cid for cid, _ in keyed}, is_postgres),
                _any(H.idempotency_key, {key for _, key in keyed}, is_postgres),
            )
        )
    sweeps = [op for op in ops if isinstance(op, SweepCustomerOp)]
    if sweeps:
        conditions.append(
            and_(
                _any(H.customer_id, {op.customer_id for op in sweeps}, is_postgres),
                H.status == HoldStatus.OPEN.value,
                H.expires_at <= max(op.now for op in sweeps),
            )
        )
    if conditions:
        await _read_holds(conn, state, or_(*conditions))


async def _load_missing_accounts(
    conn: AsyncConnection, ops: Sequence[Op], state: BatchState, grant_ids: set[str]
) -> None:
    """Zero-balance lots still needed: drawn by loaded holds, to revoke, or matching a key."""
    ids = {
        account_id
        for hold in state.holds.values()
        if hold.status == HoldStatus.OPEN
        for account_id, _ in hold.allocations
    }
    ids.update(grant_ids)
    ids.difference_update(state.accounts)
    keyed = {(op.customer_id, op.idempotency_key) for op in ops if isinstance(op, GrantOp)}
    keyed.difference_update(state.grant_keys)
    conditions: list[ColumnElement[bool]] = []
    if ids:
        conditions.append(A.id.in_(ids))
    if keyed:
        conditions.append(
            and_(
                A.customer_id.in_({cid for cid, _ in keyed}),
                A.idempotency_key.in_({key for _, key in keyed}),
            )
        )
    if not conditions:
        return
    result = await conn.execute(select(accounts_table).where(or_(*conditions)))
    for row in result:
        if row.id not in state.accounts:
            state.add_account(_account(row))


async def _load_overdraft_held(conn: AsyncConnection, ops: Sequence[Op], state: BatchState) -> None:
    """For grants (which repay overdraft debt): how much of each drawn line is only held."""
    granted = {(op.customer_id, op.currency) for op in ops if isinstance(op, GrantOp)}
    if not granted:
        return
    drawn: list[Account] = []
    for customer_id, currency in granted:
        account = state.accounts.get(account_id_for(AccountKind.OVERDRAFT, currency, customer_id))
        if account is None:
            continue
        if account.balance == 0:
            account.held_from = 0  # balance = -(held + debt), both >= 0
        else:
            drawn.append(account)
    if not drawn:
        return
    held = await _sum_open_allocations(conn, (a.id for a in drawn))
    for account in drawn:
        account.held_from = held.get(account.id, 0)


async def _sum_open_allocations(
    conn: AsyncConnection, account_ids: Iterable[str]
) -> dict[str, int]:
    result = await conn.execute(
        select(L.account_id, func.sum(L.amount))
        .join(holds_table, H.id == L.hold_id)
        .where(L.account_id.in_(list(account_ids)), H.status == HoldStatus.OPEN.value)
        .group_by(L.account_id)
    )
    return {account_id: int(total) for account_id, total in result}


async def _load_reversals(conn: AsyncConnection, ops: Sequence[Op], state: BatchState) -> None:
    """For reversals: which of their lots a payment funded, and which reversal transfers
    already exist (read after the lock, through the entries' account index)."""
    reversals = [op for op in ops if isinstance(op, ReverseOp)]
    if not reversals:
        return
    transfer_ids = {op.transfer_id for op in reversals}
    E = entries_table.c
    result = await conn.execute(
        select(E.account_id, E.transfer_id, E.kind, E.amount).where(
            E.account_id.in_({op.grant_id for op in reversals}),
            or_(E.kind == EntryKind.PAYMENT.value, E.transfer_id.in_(transfer_ids)),
        )
    )
    for row in result:
        if row.kind == EntryKind.PAYMENT:
            state.paid_lots.add(row.account_id)
        if row.transfer_id in transfer_ids:
            state.reversals[row.transfer_id] = -row.amount
