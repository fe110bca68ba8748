"""The reaper and the extender, on SQLite and PostgreSQL: what a dead process leaves behind
is finished exactly once, and two processes at once do each thing once.

"Another process" is a second `Database` and `Ledger` on the same PostgreSQL database (on
SQLite, where one writer serves a database, the same ones: its calls still interleave).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.unit.sessions.conftest import WALLET_MICROS, NewPlanCustomer

from tollhouse.catalog import Catalog
from tollhouse.clock import FrozenClock
from tollhouse.events import service as events
from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.sessions import EndReason
from tollhouse.sessions import service as sessions
from tollhouse.sessions.models import SessionSlice
from tollhouse.sessions.service.settle import end_metered, slice_key
from tollhouse.storage import Database

START_HOLD_MICROS = 18_750
SLICE_MICROS = 6_250
FLAT_HOUR_MICROS = 250_000


class Process:
    """One tollhouse process's database, ledger, catalog and (shared) clock."""

    def __init__(self, db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock) -> None:
        self.db, self.ledger, self.catalog, self.clock = db, ledger, catalog, clock

    async def start(self, customer: str, key: str = "k") -> Any:
        started = await sessions.start_metered(
            self.db, self.ledger, catalog=self.catalog, clock=self.clock,
            customer_id=customer, resource_tier="small", idempotency_key=key,
        )  # fmt: skip
        return started.session

    async def stop(self, session_id: str) -> Any:
        return await sessions.stop(
            self.db, self.ledger, session_id, catalog=self.catalog, clock=self.clock
        )

    async def reap(self) -> Any:
        return await sessions.reap(self.db, self.ledger, catalog=self.catalog, clock=self.clock)

    async def tick(self) -> Any:
        return await sessions.tick(self.db, self.ledger, catalog=self.catalog, clock=self.clock)

    async def get(self, session_id: str) -> Any:
        async with self.db.transaction() as session:
            return await sessions.get(session, session_id, clock=self.clock)

    async def wallet(self, customer: str) -> tuple[int, int]:
        async with self.db.transaction() as session:
            balance = await ledger_service.balance(session, customer, now=self.clock.now())
        return balance.available_micros, balance.held_micros

    async def slice_holds(self, session_id: str) -> list[Any]:
        async with self.db.transaction() as session:
            hold_ids = list(
                await session.scalars(
                    select(SessionSlice.hold_id)
                    .where(SessionSlice.session_id == session_id)
                    .order_by(SessionSlice.number)
                )
            )
            return [await ledger_service.get_hold(session, h) for h in hold_ids if h]

    async def ended_events(self, customer: str) -> list[dict[str, Any]]:
        async with self.db.transaction() as session:
            page = await events.list_events(session, customer_id=customer, types=["session.ended"])
        return [e.data for e in page.events]


@pytest.fixture
def one(db: Database, ledger: Ledger, metered_catalog: Catalog, clock: FrozenClock) -> Process:
    return Process(db, ledger, metered_catalog, clock)


@pytest.fixture
async def two(
    db: Database, ledger: Ledger, metered_catalog: Catalog, clock: FrozenClock
) -> AsyncIterator[Process]:
    if db.is_sqlite:
        yield Process(db, ledger, metered_catalog, clock)
        return
    other = Database(db.url)
    async with Ledger(other, clock=clock) as other_ledger:
        yield Process(other, other_ledger, metered_catalog, clock)
    await other.dispose()


async def test_a_session_nobody_extended_lapses_at_its_paid_time(
    one: Process, plan_customer: NewPlanCustomer
) -> None:
    """Every process was down for three hours: the first reaper to run ends the session at
    `paid_until` and bills exactly what was held, no more."""
    customer = await plan_customer("pro")
    view = await one.start(customer)
    one.clock.advance(3 * 3600)
    report = await one.reap()
    assert (report.ended, report.settled) == ({"lapsed": 1}, 1)
    ended = await one.get(view.id)
    assert (ended.end_reason, ended.ended_at) == ("lapsed", view.paid_until)
    assert ended.billed_micros == START_HOLD_MICROS
    assert await one.wallet(customer) == (WALLET_MICROS - START_HOLD_MICROS, 0)
    again = await one.reap()
    assert (again.ended, again.settled) == ({}, 0)


async def test_an_ended_session_left_unsettled_is_settled_once(
    one: Process, plan_customer: NewPlanCustomer
) -> None:
    """A process committed the end (bill decided) and died before the ledger calls."""
    customer = await plan_customer("pro")
    view = await one.start(customer)
    await one.tick()
    one.clock.advance(600)
    async with one.db.transaction() as session:
        await end_metered(
            session, view.id, EndReason.TERMINATED,
            settings=one.catalog.compute_sessions, clock=one.clock,
        )  # fmt: skip
    assert await one.wallet(customer) == (WALLET_MICROS - START_HOLD_MICROS, START_HOLD_MICROS)
    assert (await one.reap()).settled == 1
    assert (await one.reap()).settled == 0
    ended = await one.get(view.id)
    assert (ended.billed_micros, ended.settled_at is not None) == (12_500, True)
    assert await one.wallet(customer) == (WALLET_MICROS - 12_500, 0)
    [hold] = await one.slice_holds(view.id)
    assert (hold.status, hold.captured_amount) == ("captured", 12_500)


async def test_a_slice_held_by_a_process_that_died_is_recorded_once(
    one: Process, plan_customer: NewPlanCustomer
) -> None:
    """A process held slice 2 and died before recording it: the next tick finds that hold
    by its key and records it (nothing is held twice)."""
    customer = await plan_customer("pro")
    view = await one.start(customer)
    one.clock.advance(660)
    orphan = await one.ledger.hold(
        customer, SLICE_MICROS, idempotency_key=slice_key(view.id, 2),
        expires_at=view.started_at + timedelta(days=2),
        metadata={"purpose": "session_slice", "session_id": view.id, "slice": 2,
                  "starts_seconds": 900, "ends_seconds": 1200},
    )  # fmt: skip
    report = await one.tick()
    assert report.extended == 1
    holds = await one.slice_holds(view.id)
    assert [h.id for h in holds] == [view.hold_id, orphan.id]
    assert (await one.get(view.id)).paid_until == view.started_at + timedelta(seconds=1200)
    held = START_HOLD_MICROS + SLICE_MICROS
    assert await one.wallet(customer) == (WALLET_MICROS - held, held)


async def test_an_unrecorded_slice_hold_is_released_when_the_session_ends(
    one: Process, plan_customer: NewPlanCustomer
) -> None:
    customer = await plan_customer("pro")
    view = await one.start(customer)
    one.clock.advance(660)
    orphan = await one.ledger.hold(
        customer, SLICE_MICROS, idempotency_key=slice_key(view.id, 2),
        expires_at=view.started_at + timedelta(days=2),
        metadata={"purpose": "session_slice", "session_id": view.id, "ends_seconds": 1200},
    )  # fmt: skip
    stopped = await one.stop(view.id)
    assert stopped.billed_micros == 13_750  # 660 s
    async with one.db.transaction() as session:
        released = await ledger_service.get_hold(session, orphan.id)
    assert released.status == "voided"
    assert await one.wallet(customer) == (WALLET_MICROS - 13_750, 0)


@pytest.mark.parametrize("stops", [1, 3])
async def test_a_stop_racing_the_reaper_bills_once(
    one: Process, two: Process, plan_customer: NewPlanCustomer, stops: int
) -> None:
    """Sessions past their paid time are stopped by their customers while two reapers run,
    in two processes at once: each session ends once, is billed once, at `paid_until`."""
    customers = [await plan_customer("pro") for _ in range(3)]
    views = [await one.start(customer) for customer in customers]
    one.clock.advance(1000)
    calls = [p.stop(v.id) for v in views for p in (one, two)[:stops] * stops]
    calls += [one.reap(), two.reap()]
    await asyncio.gather(*calls)
    for customer, view in zip(customers, views, strict=True):
        assert [
            (d["session_id"], d["reason"], d["cost_micros"])
            for d in await one.ended_events(customer)
        ] == [(view.id, "lapsed", START_HOLD_MICROS)]
        assert await one.wallet(customer) == (WALLET_MICROS - START_HOLD_MICROS, 0)
        [hold] = await one.slice_holds(view.id)
        assert (hold.status, hold.captured_amount) == ("captured", START_HOLD_MICROS)
        assert (await one.get(view.id)).settled_at is not None


async def test_a_stop_racing_the_reaper_on_an_unsettled_session_settles_once(
    one: Process, two: Process, plan_customer: NewPlanCustomer
) -> None:
    customer = await plan_customer("pro")
    view = await one.start(customer)
    await one.tick()
    one.clock.advance(700)
    for _ in range(3):
        await one.tick()
    async with one.db.transaction() as session:
        await end_metered(
            session, view.id, EndReason.TERMINATED,
            settings=one.catalog.compute_sessions, clock=one.clock,
        )  # fmt: skip
    await asyncio.gather(one.stop(view.id), two.reap(), two.stop(view.id), one.reap())
    billed = 14_584  # 700 s at 75,000/h = 14,583.3 up
    assert [d["cost_micros"] for d in await one.ended_events(customer)] == [billed]
    assert await one.wallet(customer) == (WALLET_MICROS - billed, 0)
    holds = await one.slice_holds(view.id)
    assert [(h.status, h.captured_amount) for h in holds] == [("captured", billed), ("voided", 0)]


async def test_two_processes_ticking_together_extend_each_slice_once(
    one: Process, two: Process, plan_customer: NewPlanCustomer
) -> None:
    customer = await plan_customer("pro")
    view = await one.start(customer)
    for _ in range(40):
        one.clock.advance(60)
        await asyncio.gather(one.tick(), two.tick())
    holds = await one.slice_holds(view.id)
    assert len(holds) == len({h.id for h in holds}) == 1 + (2400 + 300 - 900) // 300
    ends = (await one.get(view.id)).paid_until
    assert ends == view.started_at + timedelta(seconds=2700)
    stopped = await two.stop(view.id)
    assert stopped.billed_micros == 50_000  # 2,400 s
    assert await one.wallet(customer) == (WALLET_MICROS - 50_000, 0)
    assert [d["cost_micros"] for d in await one.ended_events(customer)] == [50_000]


async def test_an_orphaned_flat_session_fee_is_captured_by_the_reaper(
    one: Process, plan_customer: NewPlanCustomer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wallet-paid flat start committed its session and died before the capture."""
    customer = await plan_customer("pro")
    real_capture = one.ledger.capture

    async def dies(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("process killed")

    monkeypatch.setattr(one.ledger, "capture", dies)
    with pytest.raises(ConnectionError):
        await sessions.start(
            one.db, one.ledger, catalog=one.catalog, clock=one.clock, customer_id=customer,
            product="hour", idempotency_key="f",
        )  # fmt: skip
    monkeypatch.setattr(one.ledger, "capture", real_capture)
    assert await one.wallet(customer) == (WALLET_MICROS - FLAT_HOUR_MICROS, FLAT_HOUR_MICROS)
    assert (await one.reap()).fees_captured == 1
    assert (await one.reap()).fees_captured == 0
    assert await one.wallet(customer) == (WALLET_MICROS - FLAT_HOUR_MICROS, 0)
