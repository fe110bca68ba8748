"""Credit alerts on both stores with a frozen clock: thresholds, crossings and their events,
once per crossing, also when several processes (watchers) see the same one at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from tollhouse.alerts import AlertState, CreditWatch
from tollhouse.alerts import service as alerts
from tollhouse.clock import FrozenClock
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput
from tollhouse.events import service as events
from tollhouse.ledger import Ledger
from tollhouse.storage import Database


@pytest.fixture
async def ledger(db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    async with Ledger(db, clock=clock) as started:
        yield started


async def new_customer(db: Database, clock: FrozenClock) -> str:
    async with db.transaction() as session:
        customer = await customers.create(session, name="Ada", clock=clock)
    return customer.id


async def set_alert(
    db: Database,
    clock: FrozenClock,
    customer_id: str,
    *,
    micros: int | None = None,
    percent: int | None = None,
    available: int = 1_000_000,
) -> alerts.AlertView | None:
    async with db.transaction() as session:
        return await alerts.set_alert(
            session,
            customer_id,
            threshold_micros=micros,
            threshold_percent=percent,
            available_micros=available,
            clock=clock,
        )


async def event_types(db: Database, customer_id: str) -> list[str]:
    async with db.transaction() as session:
        page = await events.list_events(session, customer_id=customer_id)
    return [event.type for event in page.events]


class Tasks:
    """A spawn for watchers that keeps the tasks so a test can wait for them."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    def __call__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.tasks.append(asyncio.create_task(coro))

    async def done(self) -> None:
        """Wait for every task, and for those they spawned."""
        while not all(task.done() for task in self.tasks):
            await asyncio.gather(*self.tasks)


async def test_a_threshold_is_an_amount_or_a_percent_of_the_latest_grant(
    db: Database, clock: FrozenClock, ledger: Ledger
) -> None:
    customer_id = await new_customer(db, clock)
    await ledger.grant(customer_id, 2_000_000, idempotency_key="first")
    clock.advance(1)
    await ledger.grant(customer_id, 500_000, idempotency_key="second")
    by_percent = await set_alert(db, clock, customer_id, percent=20, available=2_500_000)
    assert by_percent is not None
    assert (by_percent.effective_threshold_micros, by_percent.state) == (100_000, "armed")
    by_amount = await set_alert(db, clock, customer_id, micros=3_000_000, available=2_500_000)
    assert by_amount is not None
    assert (by_amount.effective_threshold_micros, by_amount.state) == (3_000_000, "low")
    assert await event_types(db, customer_id) == []  # setting one fires nothing
    assert await set_alert(db, clock, customer_id) is None  # neither: removed
    async with db.transaction() as session:
        assert await alerts.get(session, customer_id) is None


@pytest.mark.parametrize(
    ("micros", "percent"), [(1, 1), (-1, None), (None, 0), (None, 101)], ids=str
)
async def test_bad_thresholds_are_refused(
    db: Database, clock: FrozenClock, micros: int | None, percent: int | None
) -> None:
    customer_id = await new_customer(db, clock)
    with pytest.raises(InvalidInput):
        await set_alert(db, clock, customer_id, micros=micros, percent=percent)


async def test_each_downward_crossing_fires_once_and_rising_re_arms(
    db: Database, clock: FrozenClock
) -> None:
    customer_id = await new_customer(db, clock)
    await set_alert(db, clock, customer_id, micros=1_000, available=5_000)
    steps = [
        (AlertState.ARMED, AlertState.LOW),
        (AlertState.LOW, AlertState.DEPLETED),
        (AlertState.DEPLETED, AlertState.ARMED),
        (AlertState.ARMED, AlertState.DEPLETED),
    ]
    for seen, to in steps:
        async with db.transaction() as session:
            moved = await alerts.cross(
                session,
                customer_id,
                seen=seen,
                to=to,
                available_micros=0,
                threshold_micros=1_000,
                clock=clock,
            )
        assert moved
    async with db.transaction() as session:
        stale = await alerts.cross(
            session,
            customer_id,
            seen=AlertState.ARMED,
            to=AlertState.LOW,
            available_micros=500,
            threshold_micros=1_000,
            clock=clock,
        )
    assert not stale  # another process saw it first: nothing written
    assert await event_types(db, customer_id) == [
        "credits.low",
        "credits.depleted",
        "credits.low",
        "credits.depleted",
    ]


async def test_concurrent_calls_in_two_processes_fire_once_per_crossing(
    db: Database, clock: FrozenClock
) -> None:
    """Two watchers (two processes) see 50 calls each cross the threshold at once."""
    customer_id = await new_customer(db, clock)
    await set_alert(db, clock, customer_id, micros=1_000, available=5_000)
    tasks = Tasks()
    watchers = [CreditWatch(db, clock=clock, spawn=tasks) for _ in range(2)]
    for i in range(100):
        watchers[i % 2].observe(customer_id, 900)
    await tasks.done()
    assert [await watch.below(customer_id, 900) for watch in watchers] == [True, True]
    assert await event_types(db, customer_id) == ["credits.low"]

    watchers[0].observe(customer_id, 5_000)  # back above: re-armed
    await tasks.done()
    assert not await watchers[0].below(customer_id, 5_000)
    for i in range(100):
        watchers[i % 2].observe(customer_id, 900)
    await tasks.done()
    assert await event_types(db, customer_id) == ["credits.low", "credits.low"]


async def test_customers_without_an_alert_are_never_low(db: Database, clock: FrozenClock) -> None:
    customer_id = await new_customer(db, clock)
    tasks = Tasks()
    watch = CreditWatch(db, clock=clock, spawn=tasks)
    watch.observe(customer_id, 0)
    await tasks.done()
    assert not await watch.below(customer_id, 0)
    assert await event_types(db, customer_id) == []
