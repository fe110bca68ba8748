"""Engine and transactions for SQLite (embedded) and PostgreSQL (production).

SQLite runs in WAL mode with `synchronous=FULL` (a committed charge survives power loss) on a
single pooled connection: SQLite has one writer at a time, and serializing every transaction
through one connection removes `database is locked` errors instead of retrying them. The
ledger and metering writers group many operations into one transaction, so one connection is
not the bottleneck (see bench/).

PostgreSQL connections open within `CONNECT_TIMEOUT_SECONDS` and run each statement within
`COMMAND_TIMEOUT_SECONDS`. The pool does not ping a connection before lending it (a round trip
per checkout): after a server restart, the first statement on a dead pooled connection fails
(503 `database-unavailable`, `storage.outage`), and SQLAlchemy then discards every connection
opened before it, so the next requests connect afresh.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIN_SQLITE = (3, 33, 0)
"""Oldest SQLite the writers' multi-row statements run on (`UPDATE ... FROM`, 3.33.0)."""

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
"""The async driver tollhouse uses for each database it supports."""
CONNECT_TIMEOUT_SECONDS = 5.0
"""PostgreSQL: how long opening a connection may take (asyncpg's `timeout`; its default is 60)."""
COMMAND_TIMEOUT_SECONDS = 60.0
"""PostgreSQL: how long one statement may run before asyncpg gives up on it (`command_timeout`;
no default): a server that stopped answering (paused, a network cut with no reset) then
fails requests in bounded time instead of holding them forever."""
POOL_TIMEOUT_SECONDS = 10.0
"""PostgreSQL: how long a request waits for a free pooled connection."""
EXAMPLE_URLS = "sqlite:///tollhouse.db or postgresql://user@host/db"


def async_database_url(url: str) -> str:
    """`url` with the async driver tollhouse uses, whatever driver (or none) it names.

    Accepts what people paste: `sqlite:///x.db`, `postgresql://user@host/db`,
    `postgres://...`, `postgresql+psycopg2://...`; gives `sqlite+aiosqlite:///x.db` and
    `postgresql+asyncpg://...`. libpq's `?sslmode=` becomes asyncpg's `?ssl=` (same values).

    Raises:
        ValueError: not a URL, an unsupported database, a bad port, or SQLite without a file
            (the message says which, and what a good URL looks like; it never shows the
            URL's password).
    """
    try:
        parsed = make_url(url.strip())
        parsed.port  # noqa: B018 (a non-numeric port fails here, not at the first connect)
    except (ArgumentError, ValueError):
        raise ValueError(f"not a database URL (use {EXAMPLE_URLS})") from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    backend = "postgresql" if backend == "postgres" else backend
    if backend not in ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {backend!r} in {shown} (use {EXAMPLE_URLS})")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError(f"{shown} names no SQLite file (use sqlite:///path/to/tollhouse.db)")
    if "sslmode" in parsed.query and "ssl" not in parsed.query:
        query = {**parsed.query, "ssl": parsed.query["sslmode"]}
        parsed = parsed.set(query={k: v for k, v in query.items() if k != "sslmode"})
    return parsed.set(drivername=ASYNC_DRIVERS[backend]).render_as_string(hide_password=False)


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
    kwargs.setdefault("pool_timeout", POOL_TIMEOUT_SECONDS)
    connect_args = {
        "timeout": CONNECT_TIMEOUT_SECONDS,
        "command_timeout": COMMAND_TIMEOUT_SECONDS,
        **kwargs.pop("connect_args", {}),
    }
    return create_async_engine(url, pool_pre_ping=False, connect_args=connect_args, **kwargs)


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
