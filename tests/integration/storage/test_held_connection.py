"""`HeldConnection`: a writer's own PostgreSQL connection, statements in autocommit mode,
errors as SQLAlchemy raises them, a broken connection replaced."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from tollhouse.storage import Database
from tollhouse.storage.driver import HeldConnection


@pytest.fixture
async def held(postgres_db: Database) -> AsyncIterator[HeldConnection]:
    async with postgres_db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE held_t (id INTEGER PRIMARY KEY)"))
    connection = HeldConnection(postgres_db.engine)
    yield connection
    await connection.release()


async def stored_ids(db: Database) -> list[int]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(text("SELECT id FROM held_t ORDER BY id"))).scalars())


class TestHeldConnection:
    async def test_each_statement_is_committed_when_it_returns(
        self, held: HeldConnection, postgres_db: Database
    ) -> None:
        rows = await held.fetch("INSERT INTO held_t VALUES ($1), ($2) RETURNING id", 1, 2)

        assert [row[0] for row in rows] == [1, 2]
        assert await stored_ids(postgres_db) == [1, 2]  # seen from another connection

    async def test_a_refused_statement_raises_sqlalchemys_error_and_keeps_the_connection(
        self, held: HeldConnection, postgres_db: Database
    ) -> None:
        await held.fetch("INSERT INTO held_t VALUES ($1)", 1)
        (pid_before,) = await held.fetch("SELECT pg_backend_pid()")

        with pytest.raises(IntegrityError) as raised:
            await held.fetch("INSERT INTO held_t VALUES ($1), ($2)", 2, 1)

        assert raised.value.orig.sqlstate == "23505"  # type: ignore[union-attr]
        assert await stored_ids(postgres_db) == [1]  # the statement wrote nothing
        assert await held.fetch("SELECT pg_backend_pid()") == [pid_before]

    async def test_a_broken_connection_is_replaced(
        self, held: HeldConnection, postgres_db: Database
    ) -> None:
        ((pid,),) = await held.fetch("SELECT pg_backend_pid()")
        async with postgres_db.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        with pytest.raises(OperationalError):
            await held.fetch("SELECT 1")

        ((new_pid,),) = await held.fetch("SELECT pg_backend_pid()")
        assert new_pid != pid
        await held.fetch("INSERT INTO held_t VALUES ($1)", 7)
        assert await stored_ids(postgres_db) == [7]
