"""`storage.outage.is_unreachable`: a database that does not answer, told from one that refused.

Real failures only: a PostgreSQL URL on a port nobody listens on (connection refused, raised
by the driver's connect), a SQLite file with a broken constraint and a missing table (the
database answered: not an outage), and an `OSError` raised outside the driver."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from tests.support.ports import free_port

from tollhouse.errors import DatabaseUnavailable
from tollhouse.storage import Database
from tollhouse.storage.outage import RETRY_AFTER_SECONDS, is_unreachable, unavailable


async def test_a_refused_connection_is_unreachable_and_answers_503() -> None:
    db = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
    try:
        with pytest.raises(OSError) as caught:
            async with db.transaction() as session:
                await session.execute(text("SELECT 1"))
    finally:
        await db.dispose()
    assert is_unreachable(caught.value)
    error = unavailable(caught.value)
    assert isinstance(error, DatabaseUnavailable)
    assert (error.status, error.code) == (503, "database-unavailable")
    assert error.extra == {"retry_after_seconds": RETRY_AFTER_SECONDS}


async def test_a_refused_statement_is_not_unreachable(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(IntegrityError) as duplicate:
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(OperationalError) as missing:
            async with db.transaction() as session:
                await session.execute(text("SELECT * FROM nowhere"))
    finally:
        await db.dispose()
    assert not is_unreachable(duplicate.value)
    assert not is_unreachable(missing.value)


def test_an_os_error_outside_the_driver_is_not_the_database(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught:
        (tmp_path / "absent" / "file").read_text()
    assert not is_unreachable(caught.value)
    assert not is_unreachable(ConnectionRefusedError(111, "refused"))
