"""Webhooks on PostgreSQL shared by several processes (each a `Database` of its own: its own
connections, as `serve --workers N` has): every event is delivered once, and an event whose
transaction commits after a later one was dispatched is delivered all the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import func, select
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.support.receiver import WebhookReceiver

from tollhouse.clock import FrozenClock
from tollhouse.events import service as events
from tollhouse.storage import Database
from tollhouse.webhooks import Dispatcher, WebhookWorker
from tollhouse.webhooks import service as webhooks
from tollhouse.webhooks.models import WebhookDelivery

PROCESSES = 3
EVENTS = 60
WAIT_SECONDS = 30.0


@pytest.fixture
async def databases() -> AsyncIterator[list[Database]]:
    """One migrated PostgreSQL database, opened by `PROCESSES` engines."""
    url = await create_postgres_database()
    opened = [Database(url) for _ in range(PROCESSES)]
    yield opened
    for db in opened:
        await db.dispose()
    await drop_postgres_database(url)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    started = WebhookReceiver()
    await started.start()
    yield started
    await started.stop()


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while not condition():
            await asyncio.sleep(0.05)


async def emit(db: Database, clock: FrozenClock, number: int) -> str:
    async with db.transaction() as session:
        event = await events.emit(
            session, customer_id=None, type="credits.low", data={"n": number}, clock=clock
        )
    return event.id


async def test_workers_of_several_processes_deliver_each_event_once(
    databases: list[Database], clock: FrozenClock, receiver: WebhookReceiver
) -> None:
    async with databases[0].transaction() as session:
        await webhooks.create_endpoint(session, url=receiver.url, clock=clock)
    workers = [WebhookWorker(db, clock=clock, concurrency=4, poll_seconds=0.02) for db in databases]
    for worker in workers:
        await worker.start()
    try:
        emitted = await asyncio.gather(
            *(emit(databases[n % PROCESSES], clock, n) for n in range(EVENTS))
        )
        await until(lambda: len(receiver.effects) == EVENTS)
        await asyncio.sleep(0.5)  # time for a doubled attempt to show, were there one
    finally:
        for worker in workers:
            await worker.stop()
    assert set(receiver.effects) == set(emitted)
    assert set(receiver.effects.values()) == {1} and len(receiver.requests) == EVENTS
    async with databases[0].sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        attempts = await session.scalar(select(func.max(WebhookDelivery.attempt_count)))
    assert rows == EVENTS and attempts == 1


async def test_an_event_committed_after_a_later_one_was_dispatched_is_delivered(
    databases: list[Database], clock: FrozenClock
) -> None:
    db, other = databases[0], databases[1]
    async with db.transaction() as session:
        endpoint = await webhooks.create_endpoint(session, url="http://127.0.0.1:9/", clock=clock)
    dispatcher = Dispatcher(db, clock=clock)
    async with other.transaction() as slow:  # emits first, commits last
        early = await events.emit(slow, customer_id=None, type="credits.low", data={}, clock=clock)
        await slow.flush()
        later = await emit(db, clock, 1)
        await dispatcher.dispatch()
        async with db.sessions() as session:
            page = await webhooks.list_deliveries(session)
        assert [d.event_id for d in page.deliveries] == [later]
    assert early.id < later
    await dispatcher.dispatch()
    async with db.sessions() as session:
        page = await webhooks.list_deliveries(session, endpoint_id=endpoint.endpoint.id)
    assert sorted(d.event_id for d in page.deliveries) == sorted([early.id, later])
