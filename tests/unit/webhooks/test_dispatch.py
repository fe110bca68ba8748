"""The dispatcher: one delivery per (endpoint, event), for events created after the endpoint
was registered (or enabled) whose type it takes; none missed when a lower id commits late,
none doubled when the outbox is read again, by this process or another."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select
from tests.unit.webhooks.helpers import CUSTOMER, dispatched, emit, register

from tollhouse.clock import FrozenClock
from tollhouse.events import Event
from tollhouse.storage import Database
from tollhouse.webhooks import Dispatcher, dispatch
from tollhouse.webhooks import service as webhooks
from tollhouse.webhooks.dispatch import LOOKBACK_SECONDS, event_id_floor, id_millis
from tollhouse.webhooks.models import WebhookDelivery

URL = "https://app.example.com/hooks"


async def pairs(db: Database) -> list[tuple[str, str]]:
    """(endpoint_id, event_id) of every delivery, sorted."""
    async with db.sessions() as session:
        rows = await session.execute(select(WebhookDelivery.endpoint_id, WebhookDelivery.event_id))
        return sorted((endpoint, event) for endpoint, event in rows)


async def insert_event(db: Database, event_id: str, created_at: datetime) -> None:
    """An event with a chosen id: what a transaction that emitted earlier and committed later
    leaves behind."""
    async with db.transaction() as session:
        session.add(
            Event(
                id=event_id,
                customer_id=CUSTOMER,
                type="credits.low",
                data={},
                created_at=created_at,
            )
        )


class TestIds:
    def test_floor_is_the_lowest_id_of_its_millisecond(self) -> None:
        event = "evt_0Pv1Wd2kZZZZZZZZZZZZZZ"
        floor = event_id_floor(id_millis(event))
        assert floor == "evt_0Pv1Wd2k00000000000000" and floor <= event
        assert event_id_floor(id_millis(event) + 1) > event


class TestDispatch:
    async def test_each_endpoint_gets_the_events_it_takes(
        self, db: Database, clock: FrozenClock
    ) -> None:
        every = (await register(db, clock, URL)).endpoint.id
        sessions = (await register(db, clock, URL, ["session.*"])).endpoint.id
        low = (await register(db, clock, URL, ["credits.low"])).endpoint.id
        started = await emit(db, clock, "session.started")
        credits = await emit(db, clock, "credits.low")
        await dispatched(db, clock)
        assert await pairs(db) == sorted(
            [(every, started.id), (every, credits.id), (sessions, started.id), (low, credits.id)]
        )

    async def test_events_before_the_endpoint_are_not_delivered(
        self, db: Database, clock: FrozenClock
    ) -> None:
        await emit(db, clock)
        clock.advance(1)
        endpoint = (await register(db, clock, URL)).endpoint.id
        later = await emit(db, clock)
        await dispatched(db, clock)
        assert await pairs(db) == [(endpoint, later.id)]

    async def test_reading_again_in_this_or_another_process_adds_nothing(
        self, db: Database, clock: FrozenClock
    ) -> None:
        await register(db, clock, URL)
        for _ in range(3):
            await emit(db, clock)
        dispatcher = await dispatched(db, clock)
        first = await pairs(db)
        await dispatcher.dispatch()
        await Dispatcher(db, clock=clock).dispatch()  # another process: no memo, same window
        assert await pairs(db) == first and len(first) == 3

    async def test_an_event_committed_late_below_the_cursor_is_delivered(
        self, db: Database, clock: FrozenClock
    ) -> None:
        """The cursor passed a later id before the earlier one committed: the look-back
        finds it at the next pass."""
        endpoint = (await register(db, clock, URL)).endpoint.id
        seen = await emit(db, clock)
        dispatcher = await dispatched(db, clock)
        late_id = event_id_floor(id_millis(seen.id) - (LOOKBACK_SECONDS - 5) * 1000)[:-1] + "x"
        assert late_id < seen.id
        await insert_event(db, late_id, clock.now())
        await dispatcher.dispatch()
        assert await pairs(db) == sorted([(endpoint, seen.id), (endpoint, late_id)])

    async def test_a_new_endpoint_rereads_the_window_the_memo_skipped(
        self, db: Database, clock: FrozenClock
    ) -> None:
        """An endpoint whose registration commits after a pass read an event created at or
        after its `enabled_at` (a slow registration) still gets the event at the next pass:
        the memo of handled events is dropped when the endpoints change."""
        first = (await register(db, clock, URL)).endpoint.id
        event = await emit(db, clock)
        dispatcher = await dispatched(db, clock)
        second = (await register(db, clock, URL)).endpoint.id  # enabled_at == event's time
        await dispatcher.dispatch()
        assert await pairs(db) == sorted([(first, event.id), (second, event.id)])

    async def test_a_disabled_endpoint_gets_nothing_created_meanwhile(
        self, db: Database, clock: FrozenClock
    ) -> None:
        endpoint = (await register(db, clock, URL)).endpoint.id
        async with db.transaction() as session:
            await webhooks.update_endpoint(session, endpoint, enabled=False, clock=clock)
        clock.advance(1)
        meanwhile = await emit(db, clock)
        dispatcher = await dispatched(db, clock)
        clock.advance(1)
        async with db.transaction() as session:
            await webhooks.update_endpoint(session, endpoint, enabled=True, clock=clock)
        after = await emit(db, clock)
        await dispatcher.dispatch()
        await Dispatcher(db, clock=clock).dispatch()
        assert await pairs(db) == [(endpoint, after.id)]
        assert meanwhile.id < after.id

    async def test_many_events_are_read_a_page_at_a_time(
        self, db: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(dispatch, "PAGE", 4)
        endpoint = (await register(db, clock, URL)).endpoint.id
        emitted = [await emit(db, clock) for _ in range(10)]
        dispatcher = Dispatcher(db, clock=clock)
        assert [await dispatcher.dispatch() for _ in range(4)] == [4, 4, 2, 0]
        assert await pairs(db) == sorted((endpoint, event.id) for event in emitted)

    async def test_without_an_enabled_endpoint_nothing_is_read(
        self, db: Database, clock: FrozenClock
    ) -> None:
        await emit(db, clock)
        assert await Dispatcher(db, clock=clock).dispatch() == 0
        assert await pairs(db) == []
