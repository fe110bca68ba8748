"""Shared fixtures: a frozen clock, real SQLite files, real PostgreSQL and Redis.

PostgreSQL and Redis tests skip with a reason when the service is unreachable, except when
`CI=true`: then an unreachable service fails the test. URLs come from
`TOLLHOUSE_TEST_POSTGRES_URL` (default `postgresql+asyncpg://postgres@127.0.0.1:5432/test`)
and `TOLLHOUSE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/15`).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tollhouse.clock import FrozenClock
from tollhouse.storage import Database
from tollhouse.storage.migrate import upgrade_async

POSTGRES_URL = os.environ.get(
    "TOLLHOUSE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_URL = os.environ.get("TOLLHOUSE_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{15 - _WORKER % 4}")
"""One Redis database per xdist worker (15 down to 12: the README runs at most four), so
workers never flush each other's keys."""
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(service: str, error: BaseException) -> None:
    """Skip (or, under CI=true, fail) a test whose backing service is down."""
    message = f"{service} not reachable: {error!r}"
    if IN_CI:
        pytest.fail(message + " (CI=true requires it)")
    pytest.skip(message)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite file database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'tollhouse.db'}"
    await upgrade_async(url)
    db = Database(url)
    yield db
    await db.dispose()


async def create_postgres_database() -> str:
    """Create an empty, migrated PostgreSQL database; returns its URL."""
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"th_test_{secrets.token_hex(6)}"
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        await admin.dispose()
        unavailable("PostgreSQL", exc)
    await admin.dispose()
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    await upgrade_async(url)
    return url


async def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture
async def postgres_db() -> AsyncIterator[Database]:
    """A fresh, migrated PostgreSQL database, dropped after the test."""
    url = await create_postgres_database()
    db = Database(url)
    yield db
    await db.dispose()
    await drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The same test on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'tollhouse.db'}"
        await upgrade_async(url)
    else:
        url = await create_postgres_database()
    database = Database(url)
    yield database
    await database.dispose()
    if request.param == "postgres":
        await drop_postgres_database(url)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A reachable Redis URL whose database was flushed for this test."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    except Exception as exc:
        await client.aclose()
        unavailable("Redis", exc)
    yield REDIS_URL
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """A folder kept after the run for what a person may want to look at (screenshots):
    `test-artifacts/<test id>/`, under `TOLLHOUSE_TEST_ARTIFACTS` when set."""
    root = Path(os.environ.get("TOLLHOUSE_TEST_ARTIFACTS", "test-artifacts"))
    folder = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
