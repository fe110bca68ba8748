"""SQLite: a pipelined group commit for cached batches (`writer/cached.py`).

The writer applies a cached batch on the event loop and hands its rows here; one committer
task writes them, together with every batch applied while the previous transaction was
committing, in one transaction. So the writer decides batch N+1 while batch N commits, and a
hold answered before its commit (`Ledger.hold`) waits for no commit at all. Each account's
balance is written as the sum of its batches' deltas (`flush_sqlite.SqliteRows`).

Order and failure: transactions commit in the order their batches were applied. When a write
fails, every cache is dropped and its batches, and those applied after them, are handed back
to the writer in order (`take_failed`) to be redone the general way: each was decided over
the state the failed write left unstored. A failed COMMIT fails its ops with the error
instead (nothing can be said about their outcome; see `ledger.py`); batches applied after it
are redone. PostgreSQL's writer has the same shape (`writer/pipeline_postgres.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tollhouse.ledger.writer.cached import StaleCache, apply_cached, prepare, write_cached
from tollhouse.ledger.writer.flush_sqlite import SqliteRows
from tollhouse.ledger.writer.ops import Op, Outcome, resolve
from tollhouse.ledger.writer.state import AccountCache, HoldCache
from tollhouse.storage.driver import CommitError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Applied:
    """A batch applied over the caches: its ops and their outcomes, resolved at commit."""

    ops: list[Op]
    outcomes: list[Outcome]


class SqlitePipeline:
    """Applies batches over the caches (`take`) and writes them in order, several per
    transaction, on its own task.

    `rows` collects the rows of the batches applied since the last transaction started.
    `on_failure` is called when a write failed: the writer then `drain`s and redoes
    `take_failed` before anything else.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        accounts: AccountCache,
        hold_cache: HoldCache,
        known_accounts: set[str],
        hold_ttl: timedelta,
        to_db: Callable[[datetime | None], Any],
        on_failure: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._accounts = accounts
        self._hold_cache = hold_cache
        self._known_accounts = known_accounts
        self._hold_ttl = hold_ttl
        self._to_db = to_db
        self._on_failure = on_failure
        self.rows = SqliteRows()
        self._applied: list[Applied] = []
        self._failed: list[list[Op]] = []
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0
        """Transactions committed so far."""
        self.ops = 0
        """Operations carried by those transactions."""

    @property
    def failed(self) -> bool:
        """A write failed: `take_failed` before anything else is written."""
        return bool(self._failed)

    def take(self, ops: list[Op], now: datetime) -> list[Op]:
        """Apply `ops` over the caches at `now` and queue their rows (written soon); returns
        the ops left to the general way: all of them when the caches cannot serve them."""
        assert not self._failed, "take_failed first"
        accounts = self._accounts
        if accounts.version is None:
            return ops
        state = prepare(
            ops,
            now,
            customers=accounts.customers,
            hold_cache=self._hold_cache,
            known_accounts=self._known_accounts,
        )
        if state is None:
            return ops
        outcomes = apply_cached(
            ops,
            state,
            self.rows,
            hold_ttl=self._hold_ttl,
            accounts=accounts,
            hold_cache=self._hold_cache,
            to_db=self._to_db,
        )
        if outcomes is None:
            return ops
        self._applied.append(Applied(ops, outcomes))
        if self._task is None:
            self._task = asyncio.create_task(self._commit_loop(), name="ledger.committer")
        return []

    async def drain(self) -> None:
        """Wait until every added batch is written (or failed)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def take_failed(self) -> list[list[Op]]:
        """The ops of the batches to redo the general way, in order (call after `drain`)."""
        failed, self._failed = self._failed, []
        return failed

    async def _commit_loop(self) -> None:
        try:
            while self._applied and not self._failed:
                applied, rows = self._applied, self.rows
                self._applied, self.rows = [], SqliteRows()
                await self._commit(applied, rows)
        finally:
            self._task = None

    async def _commit(self, applied: list[Applied], rows: SqliteRows) -> None:
        try:
            await write_cached(self._engine, rows, self._accounts)
        except Exception as exc:
            self._fail(applied, exc)
            return
        self.transactions += 1
        for batch in applied:
            self.ops += len(batch.ops)
            for op, (ok, value) in zip(batch.ops, batch.outcomes, strict=True):
                resolve(op, ok, value)

    def _fail(self, applied: list[Applied], exc: Exception) -> None:
        self._accounts.clear()
        self._hold_cache.clear()
        if isinstance(exc, CommitError):
            logger.error("ledger commit failed (%r); its ops fail with the error", exc.cause)
            for batch in applied:
                for op in batch.ops:
                    resolve(op, False, exc.cause)
        else:
            level = logging.INFO if isinstance(exc, StaleCache) else logging.WARNING
            logger.log(level, "cached ledger write failed (%r); redoing it the general way", exc)
            self._failed += [batch.ops for batch in applied]
        self._failed += [batch.ops for batch in self._applied]
        self._applied, self.rows = [], SqliteRows()
        self._on_failure()
