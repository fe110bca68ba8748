"""SQLite: batches of holds, captures and voids over cached accounts, applied in memory and
written in ONE hop to aiosqlite's thread (instead of one per statement).

Why caching accounts is sound on SQLite: tollhouse embeds SQLite with one writer, the process's
`Ledger` (run one per database file; its one pooled connection serialises every transaction
of the process). Every change to a customer's accounts goes through its batches, so after a
COMMIT the batch's in-memory accounts are exactly the stored rows (`AccountCache`). Checked
anyway on every cached batch: it takes the write lock (`BEGIN IMMEDIATE`) and compares
`PRAGMA data_version`, which changes when another connection commits, with the value read
before the cache was loaded; a difference drops the cache and the batch runs the general way
(`batch.run_batch`). The guarded writes of `flush` stay in force, and any failure drops the
whole cache and the batch's holds from `HoldCache` before the general path runs the batch.
PostgreSQL never uses this: several processes write there, under row locks (`load`).

A batch is taken this way only when it holds nothing but holds, captures and voids, every
customer is cached with an escrow in the currency, every hold named by id is in `HoldCache`,
every account those holds drew from is cached, and their currency's system accounts exist. A
hold's idempotency key is checked in the batch, and against stored holds by the unique
constraint: a reused key fails the INSERT and the general path returns the existing hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tollhouse.errors import TollhouseError
from tollhouse.ledger.models import SYSTEM_KINDS, AccountKind, account_id_for
from tollhouse.ledger.writer.apply import apply
from tollhouse.ledger.writer.batch import Outcome
from tollhouse.ledger.writer.flush import collect
from tollhouse.ledger.writer.flush_sqlite import driver_writes, write_on_driver
from tollhouse.ledger.writer.load import copy_hold
from tollhouse.ledger.writer.ops import CaptureOp, HoldOp, Op, VoidOp
from tollhouse.ledger.writer.state import AccountCache, BatchState, HoldCache, committed
from tollhouse.storage.driver import CommitError, run_transaction


class _Changed(Exception):
    """Another connection committed since the cache was loaded."""


def prepare(
    ops: Sequence[Op],
    now: datetime,
    *,
    accounts: AccountCache,
    hold_cache: HoldCache,
    known_accounts: set[str],
) -> BatchState | None:
    """The batch's state from the caches, or None when the batch must run the general way."""
    if accounts.version is None:
        return None
    state = BatchState(now)
    escrows: set[str] = set()
    for op in ops:
        if isinstance(op, HoldOp):
            escrows.add(account_id_for(AccountKind.ESCROW, op.currency, op.customer_id))
            if not _add_customer(state, accounts, op.customer_id):
                return None
        elif isinstance(op, CaptureOp | VoidOp):
            cached = hold_cache.get(op.hold_id)
            if cached is None:
                return None
            if op.hold_id not in state.holds:
                state.add_hold(copy_hold(cached))
        else:
            return None
    for hold in state.holds.values():
        if not _add_customer(state, accounts, hold.customer_id):
            return None
        if any(account_id_for(k, hold.currency, None) not in known_accounts for k in SYSTEM_KINDS):
            return None
        if any(account_id not in state.accounts for account_id, _ in hold.allocations):
            return None
    if any(escrow not in state.accounts for escrow in escrows):
        return None
    return state


def _add_customer(state: BatchState, accounts: AccountCache, customer_id: str) -> bool:
    """Put the customer's cached accounts in `state` (once); False if none are cached."""
    if customer_id in state.by_customer:
        return True
    cached = accounts.customers.get(customer_id)
    if not cached:
        return False
    for account in cached:
        state.add_account(account)
    return True


async def run_cached_batch(
    engine: AsyncEngine,
    ops: Sequence[Op],
    state: BatchState,
    *,
    hold_ttl: timedelta,
    accounts: AccountCache,
    hold_cache: HoldCache,
    to_db: Callable[[datetime | None], Any],
) -> list[Outcome] | None:
    """Apply `ops` to the `prepare`d `state`, then write and commit in one driver call.

    The ops are applied here, on the event loop, and only the batch's few multi-row
    statements run on the driver's thread (`storage.driver`). Applying before the
    transaction's check is sound: when the check fails, the state and the caches are dropped.
    Holds asked with `answer_before_commit` are answered once applied (see `Ledger.hold`);
    every other op after the commit.

    Returns the outcomes in `ops` order, or None when the batch must run the general way
    (the caches were dropped: another writer, a guard, a reused idempotency key...).

    Raises:
        CommitError: COMMIT raised; nothing can be said about the outcome.
    """
    try:
        outcomes = _apply_all(state, ops, hold_ttl)
        for op, (ok, value) in zip(ops, outcomes, strict=True):
            if ok and isinstance(op, HoldOp) and op.answer_before_commit and not op.future.done():
                op.future.set_result(value)
        changes = collect(state)
        assert not changes.new_accounts and not changes.meta, "holds, captures, voids only"
        writes = driver_writes(changes, state.now, to_db)
    except Exception:  # a bug: trust no cached account it may have changed
        _drop(accounts, hold_cache, state)
        return None

    def work(connection: sqlite3.Connection) -> None:
        (version,) = connection.execute("PRAGMA data_version").fetchone()
        if not accounts.is_current(connection, version):
            raise _Changed
        write_on_driver(connection, writes)

    try:
        await run_transaction(engine, work)
    except CommitError:
        _drop(accounts, hold_cache, state)
        raise
    except Exception:
        _drop(accounts, hold_cache, state)
        return None
    for account in state.accounts.values():
        committed(account)
    hold_cache.remember(state.holds.values())
    return outcomes


def _apply_all(state: BatchState, ops: Sequence[Op], hold_ttl: timedelta) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for op in ops:
        state.begin()
        try:
            outcomes.append((True, apply(state, op, hold_ttl)))
        except TollhouseError as exc:
            state.rollback()
            outcomes.append((False, exc))
    return outcomes


def _drop(accounts: AccountCache, hold_cache: HoldCache, state: BatchState) -> None:
    accounts.clear()
    hold_cache.forget(state.holds)
