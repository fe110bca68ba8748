"""SQLite: batches of holds, captures and voids over cached accounts, applied in memory on
the event loop and written in ONE hop to aiosqlite's thread (`writer/pipeline_sqlite.py`).

Why caching accounts is sound on SQLite: tollhouse embeds SQLite with one writer, the process's
`Ledger` (run one per database file; its one pooled connection serialises every transaction
of the process). Every change to a customer's accounts goes through its batches, so the cached
accounts are the stored rows plus the batches applied and not yet written (`AccountCache`).
Checked anyway on every write: it takes the write lock (`BEGIN IMMEDIATE`) and compares
`PRAGMA data_version`, which changes when another connection commits, with the value read
before the cache was loaded; a difference fails the write (`StaleCache`). The guarded writes
of `flush` stay in force. Any failure drops every cached account and the failed batches'
holds, and the batches are redone the general way (`batch.run_batch`).
PostgreSQL has its own check, the escrow rows' versions (`cached_postgres`).

A batch is taken this way only when it holds nothing but holds, captures and voids, every
customer is cached with an escrow in the currency, every hold named by id is in `HoldCache`,
every account those holds drew from is cached, and their currency's system accounts exist. A
hold's idempotency key is checked in the batch, and against stored holds by the unique
constraint: a reused key fails the INSERT and the general path returns the existing hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tollhouse.ledger.models import SYSTEM_KINDS, AccountKind, account_id_for
from tollhouse.ledger.writer.apply import apply_all
from tollhouse.ledger.writer.flush import collect
from tollhouse.ledger.writer.flush_sqlite import SqliteRows, write_on_driver
from tollhouse.ledger.writer.load import copy_hold
from tollhouse.ledger.writer.ops import CaptureOp, HoldOp, Op, Outcome, VoidOp
from tollhouse.ledger.writer.state import (
    Account,
    AccountCache,
    BatchState,
    Hold,
    HoldCache,
    StaleState,
    committed,
)
from tollhouse.storage.driver import run_transaction


class StaleCache(StaleState):
    """Another connection committed since the accounts were cached."""


def prepare(
    ops: Sequence[Op],
    now: datetime,
    *,
    customers: Mapping[str, list[Account]],
    hold_cache: HoldCache,
    known_accounts: set[str],
) -> BatchState | None:
    """The batch's state from the caches (`customers`: customer id -> its cached accounts),
    or None when the batch must run the general way."""
    state = BatchState(now)
    if not extend(
        state, ops, customers=customers, hold_cache=hold_cache, known_accounts=known_accounts
    ):
        return None
    return state


def extend(
    state: BatchState,
    ops: Sequence[Op],
    *,
    customers: Mapping[str, list[Account]],
    hold_cache: HoldCache,
    known_accounts: set[str],
) -> bool:
    """Add to `state` what `ops` need from the caches; False when they must run the general
    way (`state` may then hold more customers, unchanged). A hold the batch already has is
    used as it stands there. Also serves `pipeline_postgres`, whose batch grows op by op."""
    escrows: set[str] = set()
    added: list[Hold] = []
    for op in ops:
        if isinstance(op, HoldOp):
            escrows.add(account_id_for(AccountKind.ESCROW, op.currency, op.customer_id))
            if not _add_customer(state, customers, op.customer_id):
                return False
        elif isinstance(op, CaptureOp | VoidOp):
            if op.hold_id in state.holds:
                continue
            cached = hold_cache.get(op.hold_id)
            if cached is None:
                return False
            hold = copy_hold(cached)
            state.add_hold(hold)
            added.append(hold)
        else:
            return False
    for hold in added:
        if not _add_customer(state, customers, hold.customer_id):
            return False
        if any(account_id_for(k, hold.currency, None) not in known_accounts for k in SYSTEM_KINDS):
            return False
        if any(account_id not in state.accounts for account_id, _ in hold.allocations):
            return False
    return all(escrow in state.accounts for escrow in escrows)


def _add_customer(
    state: BatchState, customers: Mapping[str, list[Account]], customer_id: str
) -> bool:
    """Put the customer's cached accounts in `state` (once); False if none are cached."""
    if customer_id in state.by_customer:
        return True
    cached = customers.get(customer_id)
    if not cached:
        return False
    for account in cached:
        state.add_account(account)
    return True


def apply_cached(
    ops: Sequence[Op],
    state: BatchState,
    rows: SqliteRows,
    *,
    hold_ttl: timedelta,
    accounts: AccountCache,
    hold_cache: HoldCache,
    to_db: Callable[[datetime | None], Any],
) -> list[Outcome] | None:
    """Apply `ops` to the `prepare`d `state`, here on the event loop, and add what they
    changed to `rows` (written later by `write_cached`, see `writer/pipeline_sqlite.py`).

    The cached accounts are then marked as stored (their balances are the start of the next
    batch's deltas) and the batch's holds are cached, before the write: the next batch
    decides over this one's outcome, and a failed write drops every cache and has every
    batch written since redone the general way. Every op is answered after its commit.

    Returns the outcomes in `ops` order, or None (nothing added to `rows`, the caches
    dropped) when applying raised anything but a business error: a bug, whose partial
    changes no cached account may keep.
    """
    try:
        outcomes = apply_all(state, ops, hold_ttl)
        changes = collect(state)
        assert not changes.new_accounts and not changes.meta, "holds, captures, voids only"
        rows.add(changes, state.now, to_db)
    except Exception:
        accounts.clear()
        hold_cache.forget(state.holds)
        return None
    for account in state.accounts.values():
        committed(account)
    hold_cache.remember(state.holds.values())
    return outcomes


async def write_cached(engine: AsyncEngine, rows: SqliteRows, accounts: AccountCache) -> None:
    """Write `rows` and commit, in one hop to the driver's thread.

    Raises:
        StaleCache: another connection committed since the accounts were cached.
        ConcurrentUpdate: a guarded write missed a row (the cache was wrong).
        CommitError: COMMIT raised; nothing can be said about the outcome.
        Exception: any other database error (nothing was committed).
    """
    writes = rows.writes()

    def work(connection: sqlite3.Connection) -> None:
        (version,) = connection.execute("PRAGMA data_version").fetchone()
        if not accounts.is_current(connection, version):
            raise StaleCache("another connection wrote since the accounts were cached")
        write_on_driver(connection, writes)

    await run_transaction(engine, work)
