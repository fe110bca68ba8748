"""Engine and transactions for SQLite (embedded) and PostgreSQL (production).

SQLite runs in WAL mode with `synchronous=FULL` (a committed charge survives power loss) on a
single pooled connection: SQLite has one writer at a time, and serializing every transaction
through one connection removes `database is locked` errors instead of retrying them. The
ledger and metering writers group many operations into one transaction, so one connection is
not the bottleneck (see bench/).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIN_SQLITE = (3, 33, 0)
"""Oldest SQLite the writers' multi-row statements run on (`UPDATE ... FROM`, 3.33.0)."""


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url` (`sqlite+aiosqlite:///file.db` or `postgresql+asyncpg://...`).

    SQLite's one pooled connection is not rolled back when it returns to the pool: every user
    ends its own transaction (SQLAlchemy's `Connection`, or `storage.driver`), and that reset
    would cost one more trip to the driver's thread per checkout.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} is too old: tollhouse needs "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer (UPDATE ... FROM); use a Python "
                "built with a newer SQLite, or PostgreSQL"
            )
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("use a SQLite file, not an in-memory database (one per connection)")
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            pool_reset_on_return=None,
            **kwargs,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 10)
    return create_async_engine(url, pool_pre_ping=False, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    """One engine plus its session factory. Create one per process (or per test)."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on exit, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
