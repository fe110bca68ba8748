"""What the billing domain reads of a subscription: its period starts (creation, rollovers,
restarts) and its recorded charges up to a moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tollhouse.catalog import Catalog
from tollhouse.clock import FrozenClock
from tollhouse.ledger import Ledger
from tollhouse.storage import Database
from tollhouse.subscriptions import cancel, change_plan, roll_over
from tollhouse.subscriptions import service as subscriptions

from .conftest import DOLLAR, NewCustomer

CREATED = datetime(2026, 3, 15, 12, tzinfo=UTC)
APRIL_15 = datetime(2026, 4, 15, tzinfo=UTC)


async def starts(db: Database, customer_id: str) -> list[datetime]:
    async with db.sessions() as session:
        return await subscriptions.period_starts(session, customer_id)


class TestPeriodStarts:
    async def test_creation_and_each_rollover_start_a_period(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
    ) -> None:
        customer_id = await new_customer("basic", payment=True)
        clock.set(datetime(2026, 5, 20, tzinfo=UTC))
        await roll_over(sqlite_db, catalog=catalog, clock=clock, ledger=ledger)

        assert await starts(sqlite_db, customer_id) == [
            CREATED,
            APRIL_15,
            datetime(2026, 5, 15, tzinfo=UTC),
        ]

    async def test_a_same_cycle_upgrade_keeps_the_period_and_a_restart_begins_one(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        new_customer: NewCustomer,
    ) -> None:
        customer_id = await new_customer("basic", payment=True)
        clock.advance(86_400)
        async with sqlite_db.transaction() as session:
            await change_plan(session, customer_id, "pro", catalog=catalog, clock=clock)
        upgraded = await starts(sqlite_db, customer_id)
        clock.advance(86_400)
        async with sqlite_db.transaction() as session:
            await change_plan(session, customer_id, "lifetime", catalog=catalog, clock=clock)
        clock.advance(86_400)
        async with sqlite_db.transaction() as session:
            await cancel(session, customer_id, at_period_end=False, catalog=catalog, clock=clock)

        assert upgraded == [CREATED]
        assert await starts(sqlite_db, customer_id) == [
            CREATED,
            CREATED + timedelta(days=2),  # to the one-off plan: a new cycle
            CREATED + timedelta(days=3),  # canceled now: the default plan from now
        ]


class TestCharges:
    async def test_charges_up_to_a_moment_in_the_order_recorded(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
    ) -> None:
        customer_id = await new_customer("basic", payment=True)
        clock.set(APRIL_15 + timedelta(hours=1))
        await roll_over(sqlite_db, catalog=catalog, clock=clock, ledger=ledger)
        async with sqlite_db.sessions() as session:
            march = await subscriptions.list_charges(session, customer_id, through=CREATED)
            both = await subscriptions.list_charges(session, customer_id, through=APRIL_15)

        assert [(c.kind, c.amount_micros, c.period_start) for c in march] == [
            ("subscription_fee", 9 * DOLLAR, CREATED)
        ]
        assert [c.period_start for c in both] == [CREATED, APRIL_15]
