"""Events on a PostgreSQL database whose default collation is not byte order (ICU `en`, where
`a` sorts before `Z`): the cursor still reads events in id order, as on SQLite."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from tests.conftest import POSTGRES_URL, drop_postgres_database, unavailable

from tollhouse.clock import FrozenClock
from tollhouse.events import service as events
from tollhouse.storage import Database
from tollhouse.storage.migrate import upgrade_async

COUNT = 300
"""Events emitted in one go: their ids count up past `Z` to `a` in the last symbols (at least
once in every 62), which an `en` collation orders the other way."""


@pytest.fixture
async def english_db() -> AsyncIterator[Database]:
    """A fresh, migrated PostgreSQL database whose default collation is ICU `en`."""
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"th_test_{secrets.token_hex(6)}"
    try:
        async with admin.connect() as conn:
            await conn.execute(
                text(
                    f'CREATE DATABASE "{name}" TEMPLATE template0 '
                    "LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'"
                )
            )
    except Exception as exc:
        await admin.dispose()
        unavailable("PostgreSQL with ICU", exc)
    await admin.dispose()
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    await upgrade_async(url)
    db = Database(url)
    yield db
    await db.dispose()
    await drop_postgres_database(url)


async def test_cursor_pages_follow_id_order_under_an_english_collation(
    english_db: Database, clock: FrozenClock
) -> None:
    async with english_db.transaction() as session:
        assert await session.scalar(text("SELECT 'a' < 'Z'")) is True  # not byte order
        emitted = [
            await events.emit(
                session, customer_id=None, type="credits.low", data={"n": n}, clock=clock
            )
            for n in range(COUNT)
        ]
    seen: list[int] = []
    after = None
    async with english_db.sessions() as session:
        while True:
            page = await events.list_events(session, customer_id=None, after=after, limit=7)
            seen += [event.data["n"] for event in page.events]
            if not page.has_more:
                break
            after = page.next_cursor
    assert [event.id for event in emitted] == sorted(event.id for event in emitted)
    assert seen == list(range(COUNT))
