"""The rollover job on SQLite: once per boundary, catch-up after downtime, trial end,
scheduled changes, included credits granted exactly once, rollover with a cap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tollhouse.catalog import Catalog, load_catalog_text
from tollhouse.clock import FrozenClock
from tollhouse.customers import service as customers
from tollhouse.ledger import Ledger
from tollhouse.storage import Database
from tollhouse.subscriptions import (
    cancel,
    change_plan,
    get_subscription,
    roll_over,
)

from .conftest import CATALOG_TEXT, DOLLAR, Charges, Grants, History, NewCustomer

APRIL_15 = datetime(2026, 4, 15, tzinfo=UTC)


async def roll(db: Database, catalog: Catalog, clock: FrozenClock, ledger: Ledger) -> int:
    report = await roll_over(db, catalog=catalog, clock=clock, ledger=ledger)
    return report.periods_rolled


class TestOncePerBoundary:
    async def test_rolling_twice_grants_the_period_credits_once(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        grants: Grants,
        events: History,
    ) -> None:
        customer_id = await new_customer()
        assert await roll(sqlite_db, catalog, clock, ledger) == 0
        clock.set(datetime(2026, 4, 15, 0, 30, tzinfo=UTC))
        assert await roll(sqlite_db, catalog, clock, ledger) == 1
        assert await roll(sqlite_db, catalog, clock, ledger) == 0
        found = await grants(customer_id)
        assert [(g.amount, g.expires_at) for g in found] == [
            (DOLLAR, APRIL_15),
            (DOLLAR, datetime(2026, 5, 15, tzinfo=UTC)),
        ]
        rolled = [e for e in await events(customer_id) if e.event == "period_rolled"]
        assert len(rolled) == 1 and rolled[0].at == APRIL_15

    async def test_three_missed_periods_roll_three_times_and_only_the_current_grant_lives(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        grants: Grants,
        events: History,
        charges: Charges,
    ) -> None:
        customer_id = await new_customer("basic", payment=True)
        clock.set(datetime(2026, 6, 20, tzinfo=UTC))  # boundaries Apr 15, May 15, Jun 15 passed
        assert await roll(sqlite_db, catalog, clock, ledger) == 3
        assert await roll(sqlite_db, catalog, clock, ledger) == 0
        live = [g for g in await grants(customer_id) if g.is_live(clock.now())]
        assert [(g.amount, g.expires_at) for g in live] == [
            (5 * DOLLAR, datetime(2026, 7, 15, tzinfo=UTC))
        ]
        history = await events(customer_id)
        assert [e.at for e in history if e.event == "period_rolled"] == [
            APRIL_15,
            datetime(2026, 5, 15, tzinfo=UTC),
            datetime(2026, 6, 15, tzinfo=UTC),
        ]
        outcomes = [e.details["outcome"] for e in history if e.event == "credits_granted"]
        assert outcomes == ["granted", "skipped", "skipped", "granted"]
        fees = [c.period_start for c in await charges(customer_id)]
        assert fees == [
            datetime(2026, 3, 15, 12, tzinfo=UTC),
            APRIL_15,
            datetime(2026, 5, 15, tzinfo=UTC),
            datetime(2026, 6, 15, tzinfo=UTC),
        ]
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
        assert sub.current_period_start == datetime(2026, 6, 15, tzinfo=UTC)


class TestScheduledChanges:
    async def test_downgrade_applies_at_the_boundary(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        charges: Charges,
        grants: Grants,
    ) -> None:
        customer_id = await new_customer("basic", payment=True)
        async with sqlite_db.transaction() as session:
            await change_plan(session, customer_id, "free", catalog=catalog, clock=clock)
        clock.set(datetime(2026, 4, 15, 1, tzinfo=UTC))
        assert await roll(sqlite_db, catalog, clock, ledger) == 1
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
            customer = await customers.get(session, customer_id)
        assert (sub.plan, sub.scheduled_plan, customer.plan) == ("free", None, "free")
        assert len(await charges(customer_id)) == 1  # only March's basic fee
        assert (await grants(customer_id))[-1].amount == DOLLAR

    async def test_cancel_at_period_end_becomes_canceled_on_free(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
    ) -> None:
        customer_id = await new_customer("basic", payment=True)
        async with sqlite_db.transaction() as session:
            await cancel(session, customer_id, at_period_end=True, catalog=catalog, clock=clock)
        clock.set(datetime(2026, 4, 15, 1, tzinfo=UTC))
        await roll(sqlite_db, catalog, clock, ledger)
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
        assert (sub.status, sub.plan, sub.ended_at) == ("canceled", "free", APRIL_15)


class TestScheduledDowngradeToOneOffPlan:
    """A plan ranked above `lifetime` (recurring) downgrades onto it at the period end."""

    @pytest.fixture
    def catalog(self) -> Catalog:
        text = CATALOG_TEXT.replace(
            "categories:",
            '  enterprise:\n    rank: 40\n    price: "50.00"\n    included_credits: "0"\n'
            "categories:",
        )
        return load_catalog_text(text, source="sub-test-enterprise.yaml")

    async def test_lifetime_fee_and_credits_are_recorded_once_at_the_boundary(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        charges: Charges,
        grants: Grants,
    ) -> None:
        customer_id = await new_customer("enterprise", payment=True)
        async with sqlite_db.transaction() as session:
            change = await change_plan(
                session, customer_id, "lifetime", catalog=catalog, clock=clock
            )
        assert change.kind == "downgrade_scheduled"
        clock.set(datetime(2026, 4, 15, 1, tzinfo=UTC))
        report = await roll_over(sqlite_db, catalog=catalog, clock=clock, ledger=ledger)
        assert (report.periods_rolled, report.changed_customers) == (1, (customer_id,))
        clock.set(datetime(2026, 5, 15, 1, tzinfo=UTC))
        report = await roll_over(sqlite_db, catalog=catalog, clock=clock, ledger=ledger)
        assert (report.periods_rolled, report.changed_customers) == (1, ())
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
            customer = await customers.get(session, customer_id)
        assert (sub.plan, customer.plan) == ("lifetime", "lifetime")
        assert [(c.plan, c.amount_micros) for c in await charges(customer_id)] == [
            ("enterprise", 50 * DOLLAR),
            ("lifetime", 999 * DOLLAR),
        ]
        lifetime = [g for g in await grants(customer_id) if g.amount == 100 * DOLLAR]
        assert [g.expires_at for g in lifetime] == [None]


class TestTrialEnd:
    async def test_trial_with_payment_method_becomes_active_and_is_charged(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        charges: Charges,
    ) -> None:
        customer_id = await new_customer("pro", payment=True)
        clock.set(datetime(2026, 3, 22, 0, 1, tzinfo=UTC))
        assert await roll(sqlite_db, catalog, clock, ledger) == 1
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
        assert sub.status == "active"
        assert (sub.billing_anchor_day, sub.current_period_end) == (
            22,
            datetime(2026, 4, 22, tzinfo=UTC),
        )
        assert [(c.kind, c.amount_micros) for c in await charges(customer_id)] == [
            ("subscription_fee", 29 * DOLLAR)
        ]

    async def test_trial_without_payment_method_becomes_past_due_without_credits(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        grants: Grants,
        events: History,
    ) -> None:
        customer_id = await new_customer("pro")
        clock.set(datetime(2026, 3, 22, 0, 1, tzinfo=UTC))
        await roll(sqlite_db, catalog, clock, ledger)
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
        assert sub.status == "past_due"
        assert len(await grants(customer_id)) == 1  # the trial's credits only
        assert "past_due" in [e.event for e in await events(customer_id)]

    async def test_past_due_period_ending_unpaid_expires_to_free(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
    ) -> None:
        customer_id = await new_customer("pro")
        clock.set(datetime(2026, 4, 22, 0, 1, tzinfo=UTC))
        assert await roll(sqlite_db, catalog, clock, ledger) == 2
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
            customer = await customers.get(session, customer_id)
        assert (sub.status, sub.plan, customer.plan) == ("expired", "free", "free")


class TestRolloverCredits:
    async def _spend(self, ledger: Ledger, customer_id: str, amount: int) -> None:
        hold = await ledger.hold(customer_id, amount)
        await ledger.capture(hold.id, amount)

    async def test_unused_credits_carry_over_up_to_the_cap(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        grants: Grants,
    ) -> None:
        customer_id = await new_customer("pro", payment=True)
        await self._spend(ledger, customer_id, 5 * DOLLAR)  # $15 of $20 unused; cap $8
        clock.set(datetime(2026, 3, 22, 0, 1, tzinfo=UTC))
        await roll(sqlite_db, catalog, clock, ledger)
        await roll(sqlite_db, catalog, clock, ledger)
        live = sorted(g.amount for g in await grants(customer_id) if g.is_live(clock.now()))
        assert live == [8 * DOLLAR, 20 * DOLLAR]

    async def test_carry_below_the_cap_is_the_unused_rest_even_after_the_sweep(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        grants: Grants,
    ) -> None:
        customer_id = await new_customer("pro", payment=True)
        await self._spend(ledger, customer_id, 17 * DOLLAR)  # $3 unused
        clock.set(datetime(2026, 3, 22, 0, 1, tzinfo=UTC))
        await ledger.sweep()  # the ledger expires the trial's lot before the job runs
        await roll(sqlite_db, catalog, clock, ledger)
        live = sorted(g.amount for g in await grants(customer_id) if g.is_live(clock.now()))
        assert live == [3 * DOLLAR, 20 * DOLLAR]
