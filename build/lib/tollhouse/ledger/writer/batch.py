"""One batch = one transaction: load (locked), apply each op in order, flush, commit.

`run_batch` returns each op's outcome (result or business error) only after the commit, so a
caller never sees an answer that is not durable. Unexpected errors (database, guard failure)
propagate: the writer then retries the ops one by one, so a bad op cannot fail its
neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from tollhouse.ledger.writer.apply import apply_all
from tollhouse.ledger.writer.cached_postgres import PostgresAccountCache
from tollhouse.ledger.writer.flush import flush
from tollhouse.ledger.writer.load import load
from tollhouse.ledger.writer.ops import Op, Outcome
from tollhouse.ledger.writer.state import AccountCache, BatchState, HoldCache
from tollhouse.storage.driver import CommitError, sqlite_connection


async def run_batch(
    engine: AsyncEngine,
    ops: Sequence[Op],
    *,
    now: datetime,
    hold_ttl: timedelta,
    known_accounts: set[str],
    hold_cache: HoldCache,
    accounts: AccountCache | None = None,
    postgres_cache: PostgresAccountCache | None = None,
) -> list[Outcome]:
    """Apply `ops` in one transaction and commit. Returns outcomes in `ops` order.

    With `accounts` (SQLite), the batch's customers are cached after the commit, at the
    `PRAGMA data_version` read before loading them (see `writer/cached.py`); with
    `postgres_cache`, at the escrow versions the batch wrote (`writer/cached_postgres.py`).

    Raises:
        CommitError: COMMIT raised; nothing can be said about the outcome.
        Exception: any other database or internal error (nothing was committed).
    """
    is_postgres = engine.dialect.name == "postgresql"
    state = BatchState(now)
    async with engine.connect() as conn:
        transaction = await conn.begin()
        version = None
        try:
            if accounts is not None:
                version = (
                    await sqlite_connection(conn),
                    (await conn.exec_driver_sql("PRAGMA data_version")).scalar_one(),
                )
            ensured = await load(
                conn,
                ops,
                state,
                is_postgres=is_postgres,
                known_accounts=known_accounts,
                hold_cache=hold_cache,
            )
            outcomes = apply_all(state, ops, hold_ttl)
            await flush(conn, state, is_postgres=is_postgres)
        except BaseException:
            await transaction.rollback()
            hold_cache.forget(state.holds)
            raise
        try:
            await transaction.commit()
        except Exception as exc:
            hold_cache.forget(state.holds)
            if accounts is not None:
                accounts.clear()
            raise CommitError(exc) from exc
    known_accounts.update(ensured)
    hold_cache.remember(state.holds.values())
    if accounts is not None and version is not None:
        accounts.remember(state, *version)
    if postgres_cache is not None:
        postgres_cache.remember(state)
    return outcomes
