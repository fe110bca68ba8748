"""SQLite: a pipelined group commit for cached batches (`writer/cached.py`).

The writer applies a cached batch on the event loop and hands its rows here; one committer
task writes them, together with every batch applied while the previous transaction was
committing, in one transaction. So the writer decides batch N+1 while batch N commits; each
batch's ops are answered once the transaction that carries them has committed. Each account's
balance is written as the sum of its batches' deltas (`flush_sqlite.SqliteRows`).

Order and failure: transactions commit in the order their batches were applied. When a write
fails, every cache is dropped and its batches, and those applied after them, are handed back
to the writer in order (`take_failed`) to be redone the general way: each was decided over
the state the failed write left unstored. A failed COMMIT fails its ops with the error
instead (nothing can be said about their outcome; see `ledger.py`); batches applied after it
are redone. PostgreSQL's writer has the same shape (`writer/pipeline_postgres.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tollhouse.ledger.writer.cached import StaleCache, apply_cached, prepare, write_cached
from tollhouse.ledger.writer.flush_sqlite import SqliteRows
from tollhouse.ledger.writer.ops import Op, resolve
from tollhouse.ledger.writer.pipeline import Applied, Pipeline
from tollhouse.ledger.writer.state import AccountCache, HoldCache
from tollhouse.storage.driver import CommitError

logger = logging.getLogger(__name__)


class SqlitePipeline(Pipeline):
    """Writes the taken batches in order, several per transaction (`pipeline.Pipeline`).

    `rows` collects the rows of the batches applied since the last transaction started.
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
        on_commit: Callable[[int, float], None],
    ) -> None:
        super().__init__(
            hold_cache=hold_cache,
            known_accounts=known_accounts,
            hold_ttl=hold_ttl,
            on_failure=on_failure,
            on_commit=on_commit,
        )
        self._engine = engine
        self._accounts = accounts
        self._to_db = to_db
        self.rows = SqliteRows()
        self._applied: list[Applied] = []

    def take(self, ops: list[Op], now: datetime) -> list[Op]:
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
        self._start()
        return []

    async def _write_all(self) -> None:
        while self._applied and not self._failed:
            applied, rows = self._applied, self.rows
            self._applied, self.rows = [], SqliteRows()
            await self._commit(applied, rows)

    async def _commit(self, applied: list[Applied], rows: SqliteRows) -> None:
        began = time.perf_counter()
        try:
            await write_cached(self._engine, rows, self._accounts)
        except Exception as exc:
            self._fail(applied, exc)
            return
        self._committed(sum(len(batch.ops) for batch in applied), began)
        for batch in applied:
            batch.resolve()

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
