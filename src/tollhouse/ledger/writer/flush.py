"""Write phase of a batch: the state's difference in a handful of statements.

Guards: a customer account's update only applies if the result respects its lower bound
(`balance + delta >= lower_bound` for decreases); a hold's only if it is still `open`; on
PostgreSQL an escrow row's only if it still has the batch's `version` (which moves only when a
customer's accounts change, `bumped_escrows`). A row that does not match fails the batch
(`ConcurrentUpdate` on SQLite; on PostgreSQL the write statement aborts itself with SQLSTATE
40001) and the writer retries it op by op. Under the row-lock protocol (`load`) that never
happens; the guards make a stale read (another process, a cache, a bug) fail loudly instead
of breaking a bound.

System accounts (issuance, revenue, expired) are the only rows shared between customers; they
are updated with `balance + delta` at the very end, in id order, so their locks are held from
there to COMMIT only.

PostgreSQL (`flush_postgres`) writes everything in one statement of data-modifying CTEs over
array parameters; SQLite (`flush_sqlite`) one multi-row statement per table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from tollhouse.ledger.writer.state import Account, BatchState, EntryRow, Hold, StaleState


class ConcurrentUpdate(StaleState):
    """A guarded write matched fewer rows than expected: someone else changed them."""


@dataclass(slots=True)
class Changes:
    """What a batch writes, in write order."""

    new_accounts: list[Account]
    entries: list[EntryRow]
    new_holds: list[Hold]
    allocations: list[tuple[str, int, str, int]]
    """(hold_id, seq, account_id, amount) of the new holds."""
    balances: list[tuple[str, int]] = field(default_factory=list)
    """(account id, delta) of customer accounts: guarded by their lower bound."""
    system: list[tuple[str, int]] = field(default_factory=list)
    """(account id, delta) of system accounts, sorted by id: unguarded, written last."""
    settled: list[Hold] = field(default_factory=list)
    """Existing holds that left `open` in this batch (guarded by `status = 'open'`)."""
    meta: list[Account] = field(default_factory=list)
    """Existing accounts whose `lower_bound`, `amount` or `revoked_at` changed."""
    versions: dict[str, int] = field(default_factory=dict)
    """PostgreSQL: escrow id -> the `version` it must still have (`BatchState.versions`)."""
    customers: list[str] = field(default_factory=list)
    """The customers whose accounts the batch read (PostgreSQL answers their balances)."""
    bumped: frozenset[str] = frozenset()
    """PostgreSQL: the escrows among `versions` whose version the write advances by one
    (`bumped_escrows`)."""


ACCOUNT_COLUMNS = (
    "id",
    "customer_id",
    "currency",
    "kind",
    "balance",
    "lower_bound",
    "amount",
    "expires_at",
    "priority",
    "source",
    "description",
    "idempotency_key",
    "revoked_at",
    "created_at",
)


def account_row(account: Account) -> dict[str, Any]:
    """A new account as `ledger_accounts` INSERT parameters (its final balance included)."""
    return {column: getattr(account, column) for column in ACCOUNT_COLUMNS}


def bumped_escrows(state: BatchState) -> frozenset[str]:
    """The escrows (of `state.versions`) of the customers whose set of accounts, or an
    account's bound or revocation, this batch changes: a new lot or credit line, a revoked
    lot, a new overdraft limit. Their version moves, so every process that cached the
    customer reads it again. Holds, captures, voids and expiries only move balances, which
    the write's guards check row by row, so they leave the version alone (`cached_postgres`).
    """
    customers = {a.customer_id for a in state.new_accounts}
    customers.update(a.customer_id for a in state.accounts.values() if a.meta_dirty)
    return frozenset(
        escrow_id
        for escrow_id in state.versions
        if state.accounts[escrow_id].customer_id in customers
    )


def collect(state: BatchState) -> Changes:
    changes = Changes(
        new_accounts=state.new_accounts,
        entries=state.entries,
        new_holds=state.new_holds,
        allocations=[
            (hold.id, seq, account_id, amount)
            for hold in state.new_holds
            for seq, (account_id, amount) in enumerate(hold.allocations)
        ],
        settled=[hold for hold in state.holds.values() if hold.dirty],
        customers=list(state.by_customer),
        versions=state.versions,
        bumped=bumped_escrows(state),
    )
    for account in state.accounts.values():
        if account.is_system:
            if account.balance:
                changes.system.append((account.id, account.balance))
        elif not account.is_new:
            if account.balance != account.start_balance:
                changes.balances.append((account.id, account.balance - account.start_balance))
            if account.meta_dirty:
                changes.meta.append(account)
    changes.system.sort()
    return changes


def check(kind: str, expected: int, got: int) -> None:
    """Raise `ConcurrentUpdate` unless a guarded write matched every row."""
    if got != expected:
        raise ConcurrentUpdate(f"internal: {kind} guard matched {got} of {expected} rows")


async def flush(conn: AsyncConnection, state: BatchState, *, is_postgres: bool) -> None:
    """Write everything `state` changed. (The balances PostgreSQL answers are not needed
    here: under the batch's locks no other process moved them.)

    Raises:
        ConcurrentUpdate: SQLite, a guard missed a row.
        DBAPIError: PostgreSQL, SQLSTATE 40001 when a guard missed a row (nothing written).
    """
    changes = collect(state)
    if is_postgres:
        from tollhouse.ledger.writer import flush_postgres

        await flush_postgres.write(conn, changes, state.now)
    else:
        from tollhouse.ledger.writer import flush_sqlite

        await flush_sqlite.write(conn, changes, state.now)
