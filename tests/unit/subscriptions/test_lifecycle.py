"""Subscription lifecycle on SQLite: creation, upgrades with proration, downgrades, cancel,
resume, payment method, history, tenancy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tollhouse.catalog import Catalog, PlanNotFound
from tollhouse.clock import FrozenClock
from tollhouse.customers import service as customers
from tollhouse.ledger import Ledger
from tollhouse.storage import Database
from tollhouse.subscriptions import (
    InvalidPlanChange,
    SubscriptionCanceled,
    SubscriptionNotFound,
    cancel,
    change_plan,
    deliver_grants,
    ensure_subscription,
    get_subscription,
    history,
    resume,
)

from .conftest import DOLLAR, Charges, Grants, History, NewCustomer


class TestEnsureSubscription:
    async def test_new_customer_is_on_free_and_active(
        self, sqlite_db: Database, new_customer: NewCustomer, events: History, grants: Grants
    ) -> None:
        customer_id = await new_customer()
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
            customer = await customers.get(session, customer_id)
        assert (sub.plan, sub.status, customer.plan) == ("free", "active", "free")
        assert sub.id.startswith("sub_")
        assert sub.current_period_start == datetime(2026, 3, 15, 12, tzinfo=UTC)
        assert sub.current_period_end == datetime(2026, 4, 15, tzinfo=UTC)
        assert [e.event for e in await events(customer_id)] == ["created", "credits_granted"]
        (grant,) = await grants(customer_id)
        assert (grant.amount, grant.source) == (DOLLAR, "included")
        assert grant.expires_at == sub.current_period_end

    async def test_ensure_is_idempotent(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer()
        async with sqlite_db.transaction() as session:
            first = await get_subscription(session, customer_id)
            again = await ensure_subscription(session, customer_id, catalog=catalog, clock=clock)
        assert again.id == first.id

    async def test_paid_plan_with_trial_starts_trialing_until_local_midnight(
        self, sqlite_db: Database, new_customer: NewCustomer, charges: Charges
    ) -> None:
        customer_id = await new_customer("pro", timezone="Asia/Tokyo")
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
        assert sub.status == "trialing"
        # 2026-03-15 21:00 in Tokyo + 7 days -> 2026-03-22 00:00 JST = 03-21 15:00 UTC
        assert sub.trial_end == datetime(2026, 3, 21, 15, tzinfo=UTC)
        assert sub.current_period_end == sub.trial_end
        assert await charges(customer_id) == []

    async def test_unknown_time_zone_is_invalid_input(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock
    ) -> None:
        from tollhouse.errors import InvalidInput

        async with sqlite_db.transaction() as session:
            customer = await customers.create(session, name="Bo", clock=clock)
            with pytest.raises(InvalidInput):
                await ensure_subscription(
                    session, customer.id, catalog=catalog, clock=clock, timezone="Mars/Base"
                )


class TestUpgrade:
    async def test_upgrade_mid_month_records_exact_proration_and_credits(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        charges: Charges,
        grants: Grants,
    ) -> None:
        clock.set(datetime(2026, 3, 1, tzinfo=UTC))
        customer_id = await new_customer("basic")
        clock.set(datetime(2026, 3, 15, 12, tzinfo=UTC))
        async with sqlite_db.transaction() as session:
            change = await change_plan(session, customer_id, "pro", catalog=catalog, clock=clock)
        await deliver_grants(sqlite_db, ledger=ledger, clock=clock)
        assert change.kind == "upgraded"
        assert change.proration is not None and change.proration.net_micros == 10_645_161
        assert [(c.kind, c.amount_micros, c.plan) for c in await charges(customer_id)] == [
            ("subscription_fee", 9 * DOLLAR, "basic"),
            ("proration_credit", -4_790_323, "basic"),
            ("proration_charge", 15_435_484, "pro"),
        ]
        # ($20 - $5) * 33/62, rounded down
        assert [g.amount for g in await grants(customer_id)] == [5 * DOLLAR, 7_983_870]
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
            customer = await customers.get(session, customer_id)
        assert (sub.plan, sub.status, customer.plan) == ("pro", "active", "pro")
        assert sub.current_period_end == datetime(2026, 4, 1, tzinfo=UTC)

    async def test_same_plan_is_invalid(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer()
        async with sqlite_db.transaction() as session:
            with pytest.raises(InvalidPlanChange):
                await change_plan(session, customer_id, "free", catalog=catalog, clock=clock)

    async def test_unknown_plan_is_plan_not_found(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer()
        async with sqlite_db.transaction() as session:
            with pytest.raises(PlanNotFound):
                await change_plan(session, customer_id, "gold", catalog=catalog, clock=clock)

    async def test_lifetime_is_charged_once_with_credits_that_do_not_expire(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        ledger: Ledger,
        new_customer: NewCustomer,
        charges: Charges,
        grants: Grants,
    ) -> None:
        customer_id = await new_customer()
        async with sqlite_db.transaction() as session:
            await change_plan(session, customer_id, "lifetime", catalog=catalog, clock=clock)
        await deliver_grants(sqlite_db, ledger=ledger, clock=clock)
        assert [(c.kind, c.amount_micros) for c in await charges(customer_id)] == [
            ("subscription_fee", 999 * DOLLAR)
        ]
        assert (100 * DOLLAR, None) in [(g.amount, g.expires_at) for g in await grants(customer_id)]
        async with sqlite_db.transaction() as session:
            with pytest.raises(InvalidPlanChange):
                await change_plan(session, customer_id, "basic", catalog=catalog, clock=clock)

    async def test_resubscribing_to_lifetime_reports_no_credits_already_owed(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        new_customer: NewCustomer,
        charges: Charges,
    ) -> None:
        customer_id = await new_customer()
        async with sqlite_db.transaction() as session:
            first = await change_plan(
                session, customer_id, "lifetime", catalog=catalog, clock=clock
            )
            await cancel(session, customer_id, at_period_end=False, catalog=catalog, clock=clock)
            again = await change_plan(
                session, customer_id, "lifetime", catalog=catalog, clock=clock
            )
        assert (first.credits_owed_micros, again.kind, again.credits_owed_micros) == (
            100 * DOLLAR,
            "resubscribed",
            0,
        )
        assert len(await charges(customer_id)) == 1


class TestDowngradeCancelResume:
    async def test_downgrade_is_scheduled_not_applied(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer("basic")
        async with sqlite_db.transaction() as session:
            change = await change_plan(session, customer_id, "free", catalog=catalog, clock=clock)
        assert change.kind == "downgrade_scheduled"
        async with sqlite_db.sessions() as session:
            sub = await get_subscription(session, customer_id)
        assert (sub.plan, sub.scheduled_plan) == ("basic", "free")
        assert change.effective_at == sub.current_period_end

    async def test_resume_undoes_a_scheduled_downgrade(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer("basic")
        async with sqlite_db.transaction() as session:
            await change_plan(session, customer_id, "free", catalog=catalog, clock=clock)
            sub = await resume(session, customer_id, clock=clock)
        assert (sub.plan, sub.scheduled_plan) == ("basic", None)

    async def test_cancel_now_falls_back_to_free_on_a_fresh_period(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        new_customer: NewCustomer,
    ) -> None:
        customer_id = await new_customer("basic")
        clock.advance(86_400)
        async with sqlite_db.transaction() as session:
            sub = await cancel(
                session, customer_id, at_period_end=False, catalog=catalog, clock=clock
            )
        async with sqlite_db.sessions() as session:
            customer = await customers.get(session, customer_id)
        assert (sub.status, sub.plan, customer.plan) == ("canceled", "free", "free")
        assert sub.current_period_start == clock.now()
        assert sub.ended_at == clock.now()

    async def test_canceled_subscription_cannot_resume(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer("basic")
        async with sqlite_db.transaction() as session:
            await cancel(session, customer_id, at_period_end=False, catalog=catalog, clock=clock)
        async with sqlite_db.transaction() as session:
            with pytest.raises(SubscriptionCanceled) as raised:
                await resume(session, customer_id, clock=clock)
        assert raised.value.status == 409

    async def test_cancel_at_period_end_keeps_the_plan_and_can_be_resumed(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer("basic")
        async with sqlite_db.transaction() as session:
            sub = await cancel(
                session, customer_id, at_period_end=True, catalog=catalog, clock=clock
            )
            assert (sub.status, sub.plan, sub.cancel_at_period_end) == ("active", "basic", True)
            with pytest.raises(InvalidPlanChange):
                await change_plan(session, customer_id, "free", catalog=catalog, clock=clock)
            sub = await resume(session, customer_id, clock=clock)
        assert sub.cancel_at_period_end is False

    async def test_resume_without_anything_scheduled_is_a_conflict(
        self, sqlite_db: Database, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer("basic")
        async with sqlite_db.transaction() as session:
            with pytest.raises(InvalidPlanChange):
                await resume(session, customer_id, clock=clock)

    async def test_canceled_customer_can_subscribe_again(
        self,
        sqlite_db: Database,
        catalog: Catalog,
        clock: FrozenClock,
        new_customer: NewCustomer,
    ) -> None:
        customer_id = await new_customer("basic")
        async with sqlite_db.transaction() as session:
            await cancel(session, customer_id, at_period_end=False, catalog=catalog, clock=clock)
            change = await change_plan(session, customer_id, "pro", catalog=catalog, clock=clock)
        assert change.kind == "resubscribed"
        assert (change.subscription.status, change.subscription.plan) == ("active", "pro")


class TestHistoryAndTenancy:
    async def test_history_lists_every_change_newest_first(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer("basic")
        async with sqlite_db.transaction() as session:
            await change_plan(session, customer_id, "pro", catalog=catalog, clock=clock)
            await cancel(session, customer_id, at_period_end=True, catalog=catalog, clock=clock)
            rows = await history(session, customer_id)
        assert [r.event for r in rows][:2] == ["cancel_scheduled", "upgraded"]
        assert rows[1].from_plan == "basic" and rows[1].to_plan == "pro"

    async def test_functions_only_touch_the_named_customer(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        alice = await new_customer("basic")
        bob = await new_customer()
        async with sqlite_db.transaction() as session:
            await change_plan(session, alice, "pro", catalog=catalog, clock=clock)
            assert (await get_subscription(session, bob)).plan == "free"
            assert all(r.customer_id == bob for r in await history(session, bob))

    async def test_customer_without_subscription_is_not_found(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        async with sqlite_db.transaction() as session:
            customer = await customers.create(session, name="Cy", clock=clock)
            with pytest.raises(SubscriptionNotFound):
                await get_subscription(session, customer.id)
