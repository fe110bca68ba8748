"""Ledger fixtures: a started `Ledger` (stopped after the test) and read helpers.

`ledger` runs on the parametrized `db` fixture (SQLite file and PostgreSQL); `sqlite_ledger` on
SQLite only, for the cheaper scenarios.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from tollhouse.clock import FrozenClock
from tollhouse.ledger import Balance, HoldNotFound, HoldView, Ledger, TransactionView
from tollhouse.ledger import service as ledger_service
from tollhouse.ledger.models import entries_table, holds_table
from tollhouse.storage import Database

Wallet = Callable[..., Awaitable[Balance]]
History = Callable[..., Awaitable[list[TransactionView]]]
Check = Callable[[], Awaitable[None]]
Counts = Callable[[], Awaitable[tuple[int, int]]]


@pytest.fixture
async def ledger(db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    """A started ledger on SQLite and on PostgreSQL."""
    async with Ledger(db, clock=clock) as started:
        yield started


@pytest.fixture
async def sqlite_ledger(sqlite_db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    async with Ledger(sqlite_db, clock=clock) as started:
        yield started


def _database(request: pytest.FixtureRequest) -> Database:
    for name in ("db", "sqlite_db", "postgres_db"):
        if name in request.fixturenames:
            database = request.getfixturevalue(name)
            assert isinstance(database, Database)
            return database
    raise LookupError("test uses none of db, sqlite_db, postgres_db")


@pytest.fixture
def wallet(request: pytest.FixtureRequest, clock: FrozenClock) -> Wallet:
    """`await wallet("cus_a")` -> Balance at the clock's now."""
    database = _database(request)

    async def read(customer_id: str, currency: str = "usd") -> Balance:
        async with database.sessions() as session:
            return await ledger_service.balance(session, customer_id, currency, now=clock.now())

    return read


@pytest.fixture
def history(request: pytest.FixtureRequest) -> History:
    """`await history("cus_a", limit=..., before_id=..., kinds=..., since=..., until=...)`
    -> newest-first entries."""
    database = _database(request)

    async def read(customer_id: str, **options: Any) -> list[TransactionView]:
        async with database.sessions() as session:
            return await ledger_service.transactions(session, customer_id, **options)

    return read


@pytest.fixture
def consistent(request: pytest.FixtureRequest) -> Check:
    """`await consistent()` asserts `check_invariants` finds nothing."""
    database = _database(request)

    async def check() -> None:
        async with database.sessions() as session:
            assert await ledger_service.check_invariants(session) == []

    return check


@pytest.fixture
def row_counts(request: pytest.FixtureRequest) -> Counts:
    """`await row_counts()` -> (entries, holds) stored."""
    database = _database(request)

    async def count() -> tuple[int, int]:
        async with database.sessions() as session:
            entries = await session.scalar(select(func.count()).select_from(entries_table))
            holds = await session.scalar(select(func.count()).select_from(holds_table))
        return int(entries or 0), int(holds or 0)

    return count


async def stored_hold(db: Database, hold_id: str) -> HoldView | None:
    """The hold as committed (read through a fresh engine), or None."""
    other = Database(db.url)
    try:
        async with other.sessions() as session:
            return await ledger_service.get_hold(session, hold_id)
    except HoldNotFound:
        return None
    finally:
        await other.dispose()


async def grant_elsewhere(db: Database, clock: FrozenClock, customer_id: str, amount: int) -> None:
    """Another writer (its own engine and `Ledger`) grants credit: caches become stale."""
    other_db = Database(db.url)
    try:
        async with Ledger(other_db, clock=clock) as other:
            await other.grant(customer_id, amount, idempotency_key=f"elsewhere-{amount}")
    finally:
        await other_db.dispose()
