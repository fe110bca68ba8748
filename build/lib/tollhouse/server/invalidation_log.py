"""The database half of cache invalidation: write a row after a change, poll for new rows.

`record(db, kind, subject)` inserts one `cache_invalidations` row in its own transaction (on
PostgreSQL under the table's EXCLUSIVE lock, so ids commit in order; see `server.models`).

`InvalidationLog.run` is one background task per serving process: every `interval_seconds`
(1 s) it reads the rows after the last id it has seen, `SELECT id, kind, subject ... WHERE
id > :seen ORDER BY id LIMIT 500` (an index range scan on the primary key, usually empty), and
hands each to `on_message(kind, subject)`; every 60th poll it also deletes the rows older than
`RETENTION_SECONDS`. It starts after the newest row (its caches are empty then), and a failed
poll is logged once per outage and retried at the next tick.

Retention only needs to exceed the caches' TTL (30 s): a row older than that names nothing any
process still caches from before the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from tollhouse.clock import Clock
from tollhouse.server.models import CacheInvalidation
from tollhouse.storage import Database

log = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 1.0
"""How often a serving process reads new rows: the bound on applying a change without Redis."""
RETENTION_SECONDS = 600.0
"""Rows older than this are pruned."""
PRUNE_EVERY_POLLS = 60
BATCH_ROWS = 500
"""Most rows read by one query; a fuller batch is followed by another query at once."""

_table = cast(Table, CacheInvalidation.__table__)
_after = (
    select(_table.c.id, _table.c.kind, _table.c.subject)
    .where(_table.c.id > bindparam("seen"))
    .order_by(_table.c.id)
    .limit(BATCH_ROWS)
)


async def record(db: Database, kind: str, subject: str, *, clock: Clock) -> None:
    """Insert one invalidation row and commit it.

    Raises:
        SQLAlchemyError: the database refused or is unreachable (nothing written).
    """
    async with db.transaction() as session:
        if not db.is_sqlite:
            await session.execute(text("LOCK TABLE cache_invalidations IN EXCLUSIVE MODE"))
        await session.execute(
            insert(_table).values(kind=kind, subject=subject, created_at=clock.now())
        )


async def newest_id(db: Database) -> int:
    """The id of the newest row (0 for an empty log)."""
    async with db.engine.connect() as connection:
        return int((await connection.execute(select(func.max(_table.c.id)))).scalar() or 0)


class InvalidationLog:
    """Polls `cache_invalidations` and applies new rows with `on_message(kind, subject)`."""

    def __init__(
        self,
        db: Database,
        on_message: Callable[[str, str], None],
        *,
        clock: Clock,
        interval_seconds: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self.db = db
        self.on_message = on_message
        self.clock = clock
        self.interval_seconds = interval_seconds
        self.seen = 0
        """The id of the last row applied."""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Skip the rows written so far, then poll in the background.

        Raises:
            SQLAlchemyError: the database does not answer (the process cannot serve anyway).
        """
        self.seen = await newest_id(self.db)
        self._task = asyncio.create_task(self._run(), name="invalidations.poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def poll(self) -> int:
        """Apply every row after `seen`; returns how many.

        Raises:
            SQLAlchemyError: the query failed (nothing applied, `seen` unchanged).
        """
        applied = 0
        while True:
            async with self.db.engine.connect() as connection:
                rows = (await connection.execute(_after, {"seen": self.seen})).all()
            for row_id, kind, subject in rows:
                self.on_message(kind, subject)
                self.seen = row_id
            applied += len(rows)
            if len(rows) < BATCH_ROWS:
                return applied

    async def prune(self) -> int:
        """Delete the rows older than `RETENTION_SECONDS`; returns how many."""
        cutoff = self.clock.now() - timedelta(seconds=RETENTION_SECONDS)
        async with self.db.transaction() as session:
            result = await session.execute(delete(_table).where(_table.c.created_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)

    async def _run(self) -> None:
        polls = 0
        failing = False
        while True:
            await asyncio.sleep(self.interval_seconds)
            polls += 1
            try:
                await self.poll()
                if polls % PRUNE_EVERY_POLLS == 0:
                    await self.prune()
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    log.warning("invalidation log unreadable (%s); retrying every second", exc)
                failing = True
                continue
            if failing:
                log.warning("invalidation log readable again")
                failing = False
