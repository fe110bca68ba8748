"""Events service: emit in the caller's transaction, type and data checks, cursor pages."""

from __future__ import annotations

from typing import Any

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.errors import InvalidInput
from tollhouse.events import EventView
from tollhouse.events import service as events
from tollhouse.storage import Database

CUSTOMER = "cus_0000000000000000000001"
OTHER = "cus_0000000000000000000002"


class Boom(Exception):
    """The change an event describes failing after the event was emitted."""


async def emit_many(
    db: Database, clock: FrozenClock, count: int, *, customer_id: str | None = CUSTOMER
) -> list[EventView]:
    async with db.transaction() as session:
        return [
            await events.emit(
                session,
                customer_id=customer_id,
                type="session.started",
                data={"number": number},
                clock=clock,
            )
            for number in range(count)
        ]


async def read_all(db: Database, **filters: Any) -> list[EventView]:
    async with db.sessions() as session:
        page = await events.list_events(session, limit=1000, **filters)
    assert not page.has_more
    return page.events


class TestEmit:
    async def test_emitted_event_commits_with_the_transaction(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        async with sqlite_db.transaction() as session:
            emitted = await events.emit(
                session,
                customer_id=CUSTOMER,
                type="session.ended",
                data={"session_id": "ses_1", "reason": "cap", "cost_micros": 1_000_000},
                clock=clock,
            )
        assert emitted.id.startswith("evt_") and len(emitted.id) == 26
        assert await read_all(sqlite_db, customer_id=None) == [emitted]
        assert emitted.created_at == clock.now()
        assert emitted.data == {"session_id": "ses_1", "reason": "cap", "cost_micros": 1_000_000}

    async def test_rolled_back_transaction_leaves_no_event(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        with pytest.raises(Boom):
            async with sqlite_db.transaction() as session:
                await events.emit(
                    session, customer_id=CUSTOMER, type="session.started", data={}, clock=clock
                )
                await session.flush()
                raise Boom
        assert await read_all(sqlite_db, customer_id=None) == []

    async def test_emit_does_not_commit(self, sqlite_db: Database, clock: FrozenClock) -> None:
        async with sqlite_db.sessions() as session:
            await events.emit(
                session, customer_id=CUSTOMER, type="session.started", data={}, clock=clock
            )
            await session.flush()
            await session.rollback()
        assert await read_all(sqlite_db, customer_id=None) == []

    @pytest.mark.parametrize(
        "type",
        [
            "session",
            "Session.started",
            "session.Started",
            "session..ended",
            "session.ended.",
            ".ended",
            "session-ended",
            "session.started.now",
            "1session.ended",
            "",
            "a." + "b" * 63,
        ],
    )
    async def test_malformed_type_is_refused(
        self, sqlite_db: Database, clock: FrozenClock, type: str
    ) -> None:
        async with sqlite_db.transaction() as session:
            with pytest.raises(InvalidInput) as raised:
                await events.emit(session, customer_id=None, type=type, data={}, clock=clock)
        assert raised.value.extra["errors"][0]["loc"] == "type"
        assert await read_all(sqlite_db, customer_id=None) == []

    @pytest.mark.parametrize("type", ["session.low_credit", "credits.low", "invoice.finalized"])
    async def test_dotted_lowercase_types_are_accepted(
        self, sqlite_db: Database, clock: FrozenClock, type: str
    ) -> None:
        async with sqlite_db.transaction() as session:
            emitted = await events.emit(session, customer_id=None, type=type, data={}, clock=clock)
        assert (await read_all(sqlite_db, customer_id=None))[0].type == emitted.type == type

    @pytest.mark.parametrize("data", [{"x": float("nan")}, {"x": {1, 2}}, {"x": object()}])
    async def test_data_json_cannot_hold_is_refused(
        self, sqlite_db: Database, clock: FrozenClock, data: dict[str, Any]
    ) -> None:
        async with sqlite_db.transaction() as session:
            with pytest.raises(InvalidInput):
                await events.emit(
                    session, customer_id=None, type="credits.low", data=data, clock=clock
                )

    async def test_events_of_one_transaction_read_back_in_emit_order(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        """Many events within one millisecond: ids still increase in the order emitted."""
        emitted = await emit_many(sqlite_db, clock, 500)
        ids = [event.id for event in emitted]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        read = await read_all(sqlite_db, customer_id=None)
        assert [event.data["number"] for event in read] == list(range(500))


class TestListEvents:
    async def test_pages_walk_every_event_once_in_id_order(
        self, db: Database, clock: FrozenClock
    ) -> None:
        emitted = await emit_many(db, clock, 7)
        seen: list[str] = []
        more, after = True, None
        pages = 0
        async with db.sessions() as session:
            while more:
                page = await events.list_events(session, customer_id=None, after=after, limit=3)
                seen += [event.id for event in page.events]
                more, after = page.has_more, page.next_cursor
                pages += 1
        assert seen == [event.id for event in emitted]
        assert pages == 3
        assert after == emitted[-1].id

    async def test_full_last_page_says_no_more(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        emitted = await emit_many(sqlite_db, clock, 3)
        async with sqlite_db.sessions() as session:
            page = await events.list_events(session, customer_id=None, limit=3)
            empty = await events.list_events(session, customer_id=None, after=page.next_cursor)
        assert [e.id for e in page.events] == [e.id for e in emitted] and not page.has_more
        assert empty.events == [] and empty.next_cursor is None and not empty.has_more

    async def test_customer_filter_keeps_only_its_events(
        self, db: Database, clock: FrozenClock
    ) -> None:
        mine = await emit_many(db, clock, 2)
        others = await emit_many(db, clock, 2, customer_id=OTHER)
        wide = await emit_many(db, clock, 1, customer_id=None)
        assert await read_all(db, customer_id=CUSTOMER) == mine
        assert await read_all(db, customer_id=OTHER) == others
        assert await read_all(db, customer_id=None) == mine + others + wide

    async def test_type_filter_keeps_only_those_types(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        async with sqlite_db.transaction() as session:
            for type in ("session.started", "session.ended", "session.low_credit"):
                await events.emit(session, customer_id=CUSTOMER, type=type, data={}, clock=clock)
        read = await read_all(
            sqlite_db, customer_id=CUSTOMER, types=["session.ended", "session.low_credit"]
        )
        assert [event.type for event in read] == ["session.ended", "session.low_credit"]

    @pytest.mark.parametrize(
        ("filters", "loc"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": 1001}, "limit"),
            ({"after": "cus_0000000000000000000001"}, "after"),
            ({"after": "evt_short"}, "after"),
            ({"types": ["Session.Started"]}, "type"),
            ({"types": []}, "type"),
        ],
    )
    async def test_bad_arguments_are_refused(
        self, sqlite_db: Database, filters: dict[str, Any], loc: str
    ) -> None:
        async with sqlite_db.sessions() as session:
            with pytest.raises(InvalidInput) as raised:
                await events.list_events(session, customer_id=None, **filters)
        assert raised.value.extra["errors"][0]["loc"] == loc
