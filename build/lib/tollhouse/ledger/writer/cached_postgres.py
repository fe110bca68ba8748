"""PostgreSQL: batches of holds, captures and voids over cached accounts, written in ONE
autocommit statement that checks itself, also when several processes serve one customer.

The general batch (`batch.run_batch`) takes five round trips: BEGIN, lock the escrow rows, read
the accounts, write, COMMIT; a gateway hold waits for the lock and the read, and behind the
batch before it. Yet the accounts it would read are mostly the ones this process last wrote.
So this process keeps, per customer, the accounts as its last statement on them left them
(`PostgresAccountCache`), and a batch the caches can serve (the same conditions as SQLite's,
`cached.prepare`) is applied on the event loop and written in ONE statement, in autocommit
mode, on a connection the writer keeps (`HeldConnection`), by a pipeline that applies the
next batch while a statement is in flight (`pipeline_postgres`). Durable when its statement
returns, a batch's ops are answered then. The statement is safe over a cache another process
made stale:

- Balances are written as deltas, each guarded by the account's bound on the row as it is
  then (`flush_postgres`): no hold decided over a stale balance can overdraw.
- What the deltas cannot check, the set of accounts and their bounds, is the escrow row's
  `version`, which only a batch that changes them advances (a new lot or credit line, a
  revocation, a new limit: `flush.bumped_escrows`). The statement writes only while the
  escrow rows are still at the cached versions.
- Settling a hold is guarded by its status still being `open`.
- Any guard that misses aborts the whole statement (`ledger_check`, SQLSTATE 40001).

Holds, captures and voids of other processes only move balances, so processes sharing a
customer all stay on this path. Each statement answers the balances it left on its customers'
accounts, with the other processes' changes in them, and the cache takes the difference from
what it expected (also under the batch applied since, if any); a lot with money that the
cache does not know drops the customer, to be read again. A hold the cache refuses
(`InsufficientCredit`) is asked of the wallet the general way: other processes may have
released credit since.

A statement that aborted wrote nothing: its customers, and those of the batch applied since,
are dropped from the cache, and both batches run the general way, in order; on a version or
guard miss they are also left out of the cache for `CONTENDED_SECONDS`, so that a customer
whose accounts keep changing does not pay a failed statement per batch. A statement whose
outcome is unknown (the connection failed) fails its ops with the error, as a failed COMMIT
does; the batch applied since is redone the general way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from tollhouse.ledger.models import AccountKind, account_id_for
from tollhouse.ledger.writer.flush import Changes, bumped_escrows
from tollhouse.ledger.writer.flush_postgres import Balances, write, write_alone, writes_alone
from tollhouse.ledger.writer.ops import CaptureOp, HoldOp, Op, VoidOp
from tollhouse.ledger.writer.state import MAX_CACHED_CUSTOMERS, Account, BatchState, committed
from tollhouse.storage.driver import HeldConnection

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

    def remember(self, state: BatchState, balances: Balances | None = None) -> None:
        """After `state`'s batch was written: its customers as now stored, at the versions it
        left on their escrow rows (`bumped_escrows`).

        Without `balances` (the general way, which read them under its lock), the accounts are
        taken as they are. With `balances`, those its statement answered, moved by other
        processes' batches too, each account's `start_balance` (what this process expected
        after the batch, see `pipeline_postgres`) becomes the answered balance, and its
        `balance` moves by the same drift: it may also carry a batch applied since, which is
        then written as its own delta over the answered balance."""
        now = time.monotonic()
        bumped = bumped_escrows(state)
        if balances is not None and not balances.keys() <= state.accounts.keys():
            # Another process put money on a lot this one never loaded: read them again.
            self.forget(state.by_customer)
            return
        for customer_id, accounts in state.by_customer.items():
            until = self._contended.get(customer_id)
            if until is not None:
                if until > now:
                    continue
                del self._contended[customer_id]
            for account in accounts:
                if balances is None:
                    committed(account)
                else:  # a lot it leaves out has no money
                    answered = balances.get(account.id, 0)
                    drift = answered - account.start_balance
                    account.balance += drift
                    account.start_balance = answered
                version = state.versions.get(account.id)
                if version is not None:
                    self.versions[account.id] = version + (account.id in bumped)
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


def escrows(state: BatchState, ops: Sequence[Op]) -> set[str]:
    """The escrow rows of every (customer, currency) `ops` move money for; the holds they
    settle must be in `state` (`cached.extend` puts them there)."""
    pairs: set[tuple[str, str]] = set()
    for op in ops:
        if isinstance(op, HoldOp):
            pairs.add((op.customer_id, op.currency))
        elif isinstance(op, CaptureOp | VoidOp):
            hold = state.holds[op.hold_id]
            pairs.add((hold.customer_id, hold.currency))
    return {account_id_for(AccountKind.ESCROW, currency, cid) for cid, currency in pairs}


async def send(
    engine: AsyncEngine, connection: HeldConnection, changes: Changes, now: datetime
) -> Balances:
    """Write a cached batch's `changes`: ONE autocommit statement on `connection` when they
    fit in one (`writes_alone`), else one transaction of several. Returns the balances the
    statement answered (`flush_postgres._WRITE`).

    Raises:
        DBAPIError: the server refused it (`refused_by_server`: nothing of it was written),
            SQLSTATE 40001 when a guard missed; or the connection failed (outcome unknown).
    """
    if writes_alone(changes):
        return await write_alone(connection, changes, now)
    async with engine.begin() as conn:  # several system accounts
        return await write(conn, changes, now)
