"""PostgreSQL: batches of holds, captures and voids over accounts cached at their escrow's
version, written in ONE autocommit statement that checks that version itself.

The general batch (`batch.run_batch`) takes five round trips: BEGIN, lock the escrow rows, read
the accounts, write, COMMIT; a gateway hold waits for the lock and the read, and behind the
batch before it. Yet when one process serves a customer's traffic, the accounts it would read
are the ones it last wrote. So each escrow row carries a `version` that every batch locking it
advances as it writes (`flush_postgres`), and this process keeps, per customer, the accounts
as its last batch left them and the escrow versions that batch wrote (`PostgresAccountCache`).
A batch the caches can serve (the same conditions as SQLite's, `cached.prepare`) is applied on
the event loop and written in ONE statement, in autocommit mode: its escrow rows must still be
at the cached versions, every other write of it depends on that, and the statement aborts
itself if any guard misses (`ledger_check`, SQLSTATE 40001). One round trip, on a connection
the writer keeps (`HeldConnection`), durable when it returns; its ops are answered then.

Another process that wrote one of the customers since (or anything else that changed the
rows) makes the statement write nothing. Its customers are then dropped from the cache and
the batch runs the general way. A customer written by another process is also left out of the
cache for `CONTENDED_SECONDS`, so that processes sharing a hot customer do not each pay a
failed statement per batch. A statement whose outcome is unknown (the connection failed)
fails its ops with `CommitError`'s cause, as a failed COMMIT does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from tollhouse.ledger.models import AccountKind, account_id_for
from tollhouse.ledger.writer.apply import apply_all
from tollhouse.ledger.writer.cached import prepare
from tollhouse.ledger.writer.flush import collect
from tollhouse.ledger.writer.flush_postgres import write, write_alone, writes_alone
from tollhouse.ledger.writer.ops import HoldOp, Op, Outcome
from tollhouse.ledger.writer.state import (
    MAX_CACHED_CUSTOMERS,
    Account,
    BatchState,
    HoldCache,
    committed,
)
from tollhouse.storage.driver import (
    TRANSIENT_SQLSTATES,
    CommitError,
    HeldConnection,
    refused_by_server,
    sqlstate,
)

CONTENDED_SECONDS = 1.0
"""How long a customer another process wrote is served the general way only."""


class PostgresAccountCache:
    """Per customer: its accounts as this process's last batch on it left them, and the
    `version` each of its escrow rows had after that batch (see the module). At most
    `max_customers`, the least recently written dropped first."""

    def __init__(self, max_customers: int = MAX_CACHED_CUSTOMERS) -> None:
        self.max_customers = max_customers
        self.customers: dict[str, list[Account]] = {}
        self.versions: dict[str, int] = {}
        """escrow id -> its version, for the cached customers' escrow rows."""
        self._contended: dict[str, float] = {}
        """customer id -> `time.monotonic()` until which it is not cached."""

    def remember(self, state: BatchState) -> None:
        """After `state`'s batch was written: its customers as now stored, its escrow rows
        one version further."""
        now = time.monotonic()
        for customer_id, accounts in state.by_customer.items():
            until = self._contended.get(customer_id)
            if until is not None:
                if until > now:
                    continue
                del self._contended[customer_id]
            for account in accounts:
                committed(account)
                version = state.versions.get(account.id)
                if version is not None:
                    self.versions[account.id] = version + 1
            self.customers.pop(customer_id, None)  # to the end: the most recent
            self.customers[customer_id] = list(accounts)
        while len(self.customers) > self.max_customers:
            self._drop(next(iter(self.customers)))

    def forget(self, customer_ids: Iterable[str], *, contended: bool = False) -> None:
        """Drop the customers (their accounts may hold a failed batch's changes); with
        `contended`, keep them out for `CONTENDED_SECONDS`."""
        now = time.monotonic()
        for customer_id in customer_ids:
            self._drop(customer_id)
            if contended:
                self._contended[customer_id] = now + CONTENDED_SECONDS
        if len(self._contended) > self.max_customers:
            self._contended = {c: t for c, t in self._contended.items() if t > now}

    def _drop(self, customer_id: str) -> None:
        for account in self.customers.pop(customer_id, ()):
            self.versions.pop(account.id, None)


def _escrows(state: BatchState, ops: Sequence[Op]) -> set[str]:
    """The escrow rows of every (customer, currency) the batch moves money for."""
    pairs = {(hold.customer_id, hold.currency) for hold in state.holds.values()}
    pairs.update((op.customer_id, op.currency) for op in ops if isinstance(op, HoldOp))
    return {account_id_for(AccountKind.ESCROW, currency, cid) for cid, currency in pairs}


async def run_cached(
    engine: AsyncEngine,
    ops: Sequence[Op],
    *,
    now: datetime,
    hold_ttl: timedelta,
    cache: PostgresAccountCache,
    connection: HeldConnection,
    hold_cache: HoldCache,
    known_accounts: set[str],
) -> list[Outcome] | None:
    """Apply `ops` over the caches and write them in one autocommit statement. Returns the
    outcomes in `ops` order, or None when nothing was written and the batch must run the
    general way (the caches cannot serve it, or the rows changed under it).

    Raises:
        CommitError: the statement's outcome is unknown (its connection failed).
    """
    state = prepare(
        ops, now, customers=cache.customers, hold_cache=hold_cache, known_accounts=known_accounts
    )
    if state is None:
        return None
    escrows = _escrows(state, ops)
    if not escrows.issubset(cache.versions):
        return None
    state.versions = {escrow_id: cache.versions[escrow_id] for escrow_id in escrows}
    customers = list(state.by_customer)
    try:
        outcomes = apply_all(state, ops, hold_ttl)
        changes = collect(state)
        assert not changes.new_accounts and not changes.meta, "holds, captures, voids only"
    except Exception:  # a bug: no cached account may keep its partial changes
        cache.forget(customers)
        hold_cache.forget(state.holds)
        return None
    try:
        if writes_alone(changes):
            await write_alone(connection, changes, now)
        else:  # several system accounts: several statements, one transaction
            async with engine.begin() as conn:
                await write(conn, changes, now)
    except BaseException as exc:
        # The statement's own check failed (another process wrote the rows), or a deadlock.
        cache.forget(customers, contended=sqlstate(exc) in TRANSIENT_SQLSTATES)
        hold_cache.forget(state.holds)
        if isinstance(exc, Exception):
            if refused_by_server(exc):  # in autocommit mode: nothing of it was written
                return None
            raise CommitError(exc) from exc
        raise
    cache.remember(state)
    hold_cache.remember(state.holds.values())
    return outcomes
