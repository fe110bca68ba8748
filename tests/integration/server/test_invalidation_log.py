"""The invalidation log on a SQLite file and on PostgreSQL: written after a change, polled.

- a poll applies every row written after the last one it saw, in order, once;
- a new poller starts after the newest row (its caches are empty);
- pruning deletes old rows only, and ids are never reused afterwards (a poller at id N would
  skip a reused id below N);
- on PostgreSQL, a row that commits late is never passed by a poll (ids commit in order).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, insert, select, text

from tollhouse.clock import FrozenClock
from tollhouse.server.invalidation import announce, customer_message, key_message
from tollhouse.server.invalidation_log import RETENTION_SECONDS, InvalidationLog, record
from tollhouse.server.models import CacheInvalidation
from tollhouse.storage import Database

Applied = list[tuple[str, str]]


def poller(db: Database, clock: FrozenClock) -> tuple[InvalidationLog, Applied]:
    applied: Applied = []
    return InvalidationLog(db, lambda kind, ident: applied.append((kind, ident)), clock=clock), (
        applied
    )


async def ids(db: Database) -> list[int]:
    async with db.engine.connect() as connection:
        rows = await connection.execute(select(CacheInvalidation.id).order_by(CacheInvalidation.id))
        return [row[0] for row in rows]


class TestPoll:
    async def test_a_poll_applies_new_rows_in_order_once(
        self, db: Database, clock: FrozenClock
    ) -> None:
        log, applied = poller(db, clock)
        await log.start()
        await record(db, "key", "key_1", clock=clock)
        await announce(db, customer_message("cus_1"), redis_url=None, clock=clock)

        assert await log.poll() == 2
        assert await log.poll() == 0
        await log.stop()

        assert applied == [("key", "key_1"), ("customer", "cus_1")]

    async def test_a_new_poller_starts_after_the_newest_row(
        self, db: Database, clock: FrozenClock
    ) -> None:
        await announce(db, key_message("key_old"), redis_url=None, clock=clock)
        log, applied = poller(db, clock)
        await log.start()
        await announce(db, key_message("key_new"), redis_url=None, clock=clock)

        await log.poll()
        await log.stop()

        assert applied == [("key", "key_new")]


class TestPrune:
    async def test_old_rows_are_deleted_and_their_ids_never_reused(
        self, db: Database, clock: FrozenClock
    ) -> None:
        log, applied = poller(db, clock)
        await log.start()
        for n in range(3):
            await record(db, "key", f"key_{n}", clock=clock)
        await log.poll()
        clock.advance(RETENTION_SECONDS + 1)
        await record(db, "key", "key_recent", clock=clock)
        before = await ids(db)

        assert await log.prune() == 3
        assert await log.poll() == 1

        clock.advance(RETENTION_SECONDS + 1)
        assert await log.prune() == 1  # now the log is empty
        await record(db, "key", "key_after", clock=clock)
        after = await ids(db)
        assert len(after) == 1 and after[0] > max(before)
        assert await log.poll() == 1
        await log.stop()
        assert applied[-2:] == [("key", "key_recent"), ("key", "key_after")]


class TestCommitOrder:
    async def test_a_poll_never_passes_a_row_that_commits_late(
        self, postgres_db: Database, clock: FrozenClock
    ) -> None:
        """A writer that took its id and has not committed yet holds back the ones after it,
        so no poll can see a later id first and move past the earlier one."""
        db = postgres_db
        log, applied = poller(db, clock)
        await log.start()
        async with db.sessions() as slow, slow.begin():
            await slow.execute(text("LOCK TABLE cache_invalidations IN EXCLUSIVE MODE"))
            await slow.execute(
                insert(CacheInvalidation).values(kind="key", subject="slow", created_at=clock.now())
            )
            fast = asyncio.create_task(record(db, "key", "fast", clock=clock))
            await waiting_for_a_lock(db)

            assert await log.poll() == 0  # neither is visible yet
        await fast

        assert await log.poll() == 2
        await log.stop()
        assert applied == [("key", "slow"), ("key", "fast")]


async def waiting_for_a_lock(db: Database) -> None:
    """Return once some backend of `db` waits for a lock (the second writer)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(200):
        async with db.engine.connect() as connection:
            if (await connection.execute(query)).scalar():
                return
        await asyncio.sleep(0.025)
    raise AssertionError("the second writer never waited for the first")


async def test_a_row_counts_once_whatever_its_created_at(db: Database, clock: FrozenClock) -> None:
    """Rows are found by id, not by time: one written with a clock behind the reader's is
    applied all the same."""
    log, applied = poller(db, clock)
    await log.start()
    behind = FrozenClock(clock.now() - timedelta(hours=1))

    await record(db, "customer", "cus_late", clock=behind)

    assert await log.poll() == 1
    await log.stop()
    async with db.engine.connect() as connection:
        assert (await connection.execute(select(func.count(CacheInvalidation.id)))).scalar() == 1
    assert applied == [("customer", "cus_late")]
