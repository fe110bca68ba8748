"""Metered (compute) sessions through the service, on SQLite and PostgreSQL, with a frozen
clock: `run` plays `serve`'s loop (a tick every slice / 5 = 60 s) while time passes.

The catalog (`conftest.METERED_CATALOG_TEXT`): pro small is $0.075/h = 75,000 micros/h, so a
start holds 15 min = 18,750 micros and each 5-min slice 6,250.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.unit.sessions.conftest import METERED_CATALOG_TEXT, WALLET_MICROS, NewPlanCustomer

from tollhouse.catalog import Catalog, ResourceTierNotInPlan, load_catalog_text
from tollhouse.clock import FrozenClock
from tollhouse.errors import IdempotencyKeyReused
from tollhouse.events import service as events
from tollhouse.ledger import InsufficientCredit, Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.metering import service as metering
from tollhouse.sessions import SessionEnded, SessionNotFound, SessionNotMetered, TierNotPriced
from tollhouse.sessions import service as sessions
from tollhouse.sessions.models import SessionSlice
from tollhouse.storage import Database
from tollhouse.subscriptions import QuotaExceeded
from tollhouse.subscriptions import service as subscriptions

START_HOLD_MICROS = 18_750
"""15 min at pro small's 75,000 micros/h."""
SLICE_MICROS = 6_250
"""5 min at 75,000 micros/h."""
TICK_SECONDS = 60


class Env:
    """The services one test uses, and the readings it makes."""

    def __init__(self, db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock) -> None:
        self.db, self.ledger, self.catalog, self.clock = db, ledger, catalog, clock

    async def start(self, customer: str, tier: str = "small", key: str = "k") -> Any:
        started = await sessions.start_metered(
            self.db, self.ledger, catalog=self.catalog, clock=self.clock,
            customer_id=customer, resource_tier=tier, idempotency_key=key,
        )  # fmt: skip
        return started.session

    async def run(self, seconds: float) -> None:
        """Let `seconds` pass, ticking every `TICK_SECONDS` as `serve` does."""
        left = seconds
        while left > 0:
            step = min(TICK_SECONDS, left)
            self.clock.advance(step)
            left -= step
            await sessions.tick(self.db, self.ledger, catalog=self.catalog, clock=self.clock)

    async def stop(self, session_id: str, customer: str | None = None) -> Any:
        return await sessions.stop(
            self.db, self.ledger, session_id, catalog=self.catalog, clock=self.clock,
            customer_id=customer,
        )  # fmt: skip

    async def get(self, session_id: str) -> Any:
        async with self.db.transaction() as session:
            return await sessions.get(session, session_id, clock=self.clock)

    async def wallet(self, customer: str) -> tuple[int, int]:
        """(available, held) micros."""
        async with self.db.transaction() as session:
            balance = await ledger_service.balance(session, customer, now=self.clock.now())
        return balance.available_micros, balance.held_micros

    async def holds(self, session_id: str) -> list[Any]:
        """The session's slice holds, in slice order."""
        async with self.db.transaction() as session:
            hold_ids = await session.scalars(
                select(SessionSlice.hold_id)
                .where(SessionSlice.session_id == session_id)
                .order_by(SessionSlice.number)
            )
            return [
                await ledger_service.get_hold(session, hold_id)
                for hold_id in list(hold_ids)
                if hold_id is not None
            ]

    async def facts(self, customer: str) -> list[tuple[str, dict[str, Any]]]:
        async with self.db.transaction() as session:
            page = await events.list_events(session, customer_id=customer)
        return [(e.type, e.data) for e in page.events]


@pytest.fixture
def env(db: Database, ledger: Ledger, metered_catalog: Catalog, clock: FrozenClock) -> Env:
    return Env(db, ledger, metered_catalog, clock)


class TestStart:
    async def test_a_start_holds_the_minimum_run(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro")
        view = await env.start(customer)
        assert (view.kind, view.resource_tier, view.status) == ("metered", "small", "active")
        assert (view.rate_micros_per_hour, view.cost_micros) == (75_000, 0)
        assert view.paid_until == view.started_at + timedelta(minutes=15)
        assert await env.wallet(customer) == (WALLET_MICROS - START_HOLD_MICROS, START_HOLD_MICROS)
        [hold] = await env.holds(view.id)
        assert (hold.id, hold.amount, hold.status) == (view.hold_id, START_HOLD_MICROS, "open")
        assert hold.expires_at > view.paid_until + timedelta(hours=1)
        [(kind, data)] = await env.facts(customer)
        assert (kind, data["resource_tier"], data["hold_micros"]) == (
            "session.started",
            "small",
            START_HOLD_MICROS,
        )

    async def test_a_tier_not_in_the_plan_names_the_lowest_plan_that_has_it(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("free")
        with pytest.raises(ResourceTierNotInPlan) as large:
            await env.start(customer, "large")
        with pytest.raises(ResourceTierNotInPlan) as xlarge:
            await env.start(customer, "xlarge", key="k2")
        assert (large.value.status, large.value.extra["required_plan"]) == (403, "pro")
        assert xlarge.value.extra["required_plan"] == "enterprise"
        assert await env.wallet(customer) == (WALLET_MICROS, 0)
        async with env.db.transaction() as session:
            assert await sessions.list_sessions(session, clock=env.clock) == []

    async def test_a_tier_without_a_rate_is_refused(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("unpriced")
        with pytest.raises(TierNotPriced) as refused:
            await env.start(customer)
        assert refused.value.extra == {"tier": "small", "plan": "unpriced"}

    async def test_a_wallet_short_of_the_minimum_run_starts_nothing(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro", micros=START_HOLD_MICROS - 1)
        with pytest.raises(InsufficientCredit):
            await env.start(customer)
        assert await env.wallet(customer) == (START_HOLD_MICROS - 1, 0)
        async with env.db.transaction() as session:
            assert await sessions.list_sessions(session, clock=env.clock) == []

    async def test_a_replayed_start_answers_the_same_session_and_holds_once(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro")
        first = await env.start(customer, key="s")
        again = await sessions.start_metered(
            env.db, env.ledger, catalog=env.catalog, clock=env.clock, customer_id=customer,
            resource_tier="small", idempotency_key="s",
        )  # fmt: skip
        assert (again.replayed, again.session.id) == (True, first.id)
        assert await env.wallet(customer) == (WALLET_MICROS - START_HOLD_MICROS, START_HOLD_MICROS)
        with pytest.raises(IdempotencyKeyReused):
            await env.start(customer, "medium", key="s")
        with pytest.raises(IdempotencyKeyReused):
            await sessions.start(
                env.db, env.ledger, catalog=env.catalog, clock=env.clock, customer_id=customer,
                product="hour", idempotency_key="s",
            )  # fmt: skip
        second = await env.start(customer, "medium", key="t")
        assert second.id != first.id  # a customer may run several at once

    async def test_a_start_cut_off_after_its_hold_is_finished_by_its_retry(
        self, env: Env, plan_customer: NewPlanCustomer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The process dies between the hold and the session's commit: the retry finds the
        same hold (same key) and writes the session once."""
        customer = await plan_customer("pro")

        async def dies(*args: object, **kwargs: object) -> None:
            raise ConnectionError("process killed")

        with monkeypatch.context() as patched:
            patched.setattr("tollhouse.sessions.service.metered._insert", dies)
            with pytest.raises(ConnectionError):
                await env.start(customer, key="s")
        assert await env.wallet(customer) == (WALLET_MICROS - START_HOLD_MICROS, START_HOLD_MICROS)
        retried = await sessions.start_metered(
            env.db, env.ledger, catalog=env.catalog, clock=env.clock, customer_id=customer,
            resource_tier="small", idempotency_key="s",
        )  # fmt: skip
        assert retried.replayed and retried.session.hold_id is not None
        assert await env.wallet(customer) == (WALLET_MICROS - START_HOLD_MICROS, START_HOLD_MICROS)

    async def test_the_estimate_prices_a_run_and_the_start(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro")
        async with env.db.transaction() as session:
            quote = await sessions.estimate(
                session, customer, catalog=env.catalog, resource_tier="medium",
                duration_seconds=1800,
            )  # fmt: skip
        assert (quote.plan, quote.rate_micros_per_hour, quote.cost_micros) == (
            "pro",
            150_000,
            75_000,
        )
        assert (quote.start_hold_micros, quote.slice_micros) == (37_500, 12_500)


class TestBilling:
    @pytest.mark.parametrize(
        ("plan", "tier", "seconds", "billed"),
        [
            ("pro", "small", 1800, 37_500),  # 0.5 h at $0.075/h
            ("free", "small", 2700.5, 37_514),  # 2,701 s at $0.05/h = 37,513.9 up
            ("pro", "large", 45, 7_500),  # 45 s at $0.60/h
            ("pro", "medium", 3599.2, 150_000),  # 3,600 s at $0.15/h
            ("enterprise", "xlarge", 4000, 1_111_112),  # 1,111,111.1 up
            ("enterprise", "small", 90, 250),  # 90 s at $0.01/h
            ("operator", "xlarge", 5000, 0),  # operators run free: nothing held
        ],
    )
    async def test_a_stop_bills_the_exact_run_once(
        self, env: Env, plan_customer: NewPlanCustomer,
        plan: str, tier: str, seconds: float, billed: int,
    ) -> None:  # fmt: skip
        customer = await plan_customer(plan)
        view = await env.start(customer, tier)
        await env.run(seconds)
        stopped = await env.stop(view.id)
        assert (stopped.status, stopped.end_reason) == ("ended", "terminated")
        assert stopped.ended_at == view.started_at + timedelta(seconds=seconds)
        assert (stopped.billed_micros, stopped.cost_micros, stopped.fee_micros) == (billed,) * 3
        assert stopped.settled_at is not None
        assert await env.wallet(customer) == (WALLET_MICROS - billed, 0)
        holds = await env.holds(view.id)
        assert all(h.status in ("captured", "voided") for h in holds)
        assert sum(h.captured_amount for h in holds) == billed
        ended = [data for kind, data in await env.facts(customer) if kind == "session.ended"]
        assert [(d["reason"], d["cost_micros"]) for d in ended] == [("terminated", billed)]
        again = await env.stop(view.id)
        assert again.billed_micros == billed
        assert await env.wallet(customer) == (WALLET_MICROS - billed, 0)

    async def test_the_current_cost_is_readable_while_it_runs(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro")
        view = await env.start(customer)
        await env.run(600)
        env.clock.advance(0.5)
        running = await env.get(view.id)
        assert (running.status, running.cost_micros) == ("active", 12_521)  # 601 s
        assert running.billed_micros is None

    async def test_used_up_slices_are_captured_as_the_session_runs(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro")
        view = await env.start(customer)
        await env.run(3 * 3600)
        holds = await env.holds(view.id)
        assert len(holds) == 1 + (3 * 3600 + 300 - 900) // 300
        assert [h.status for h in holds].count("open") <= 2
        assert all(h.captured_amount == h.amount for h in holds if h.status == "captured")
        stopped = await env.stop(view.id)
        assert stopped.billed_micros == 225_000  # 3 h at $0.075/h
        assert await env.wallet(customer) == (WALLET_MICROS - 225_000, 0)


class TestCredit:
    async def test_a_session_whose_wallet_runs_out_stops_within_one_slice(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        """The wallet covers the minimum run and two slices: the second slice's hold takes
        its last micro at 960 s; the next extension (at 1,260 s, one slice later) fails, and
        the session stops then, billed for 1,260 s."""
        wallet = START_HOLD_MICROS + 2 * SLICE_MICROS
        customer = await plan_customer("pro", micros=wallet)
        view = await env.start(customer)
        await env.run(960)
        assert await env.wallet(customer) == (0, 2 * SLICE_MICROS)  # slice 1 captured, used up
        emptied_at = env.clock.now()
        await env.run(300)
        ended = await env.get(view.id)
        assert (ended.status, ended.end_reason) == ("ended", "credit")
        assert ended.ended_at is not None and ended.ended_at - emptied_at <= timedelta(minutes=5)
        assert ended.ended_at == view.started_at + timedelta(seconds=1260)
        assert ended.billed_micros == 26_250 and ended.settled_at is not None
        assert await env.wallet(customer) == (wallet - 26_250, 0)
        facts = [(kind, data.get("reason")) for kind, data in await env.facts(customer)]
        assert facts == [
            ("session.started", None),
            ("session.low_credit", None),
            ("session.ended", "credit"),
        ]

    async def test_low_credit_fires_once_per_crossing(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro", micros=START_HOLD_MICROS + SLICE_MICROS)
        view = await env.start(customer)
        await env.run(600)
        await env.ledger.grant(customer, 100 * SLICE_MICROS, idempotency_key="top-up")
        await env.run(600)
        low = [d for kind, d in await env.facts(customer) if kind == "session.low_credit"]
        assert [(d["session_id"], d["slices_left"]) for d in low] == [(view.id, 1)]
        assert (await env.get(view.id)).status == "active"


class TestHeartbeats:
    @pytest.fixture(autouse=True)
    def heartbeats_due(self, env: Env) -> None:
        """The catalog with `heartbeat_timeout: 600`."""
        settings = replace(env.catalog.compute_sessions, heartbeat_timeout_seconds=600)
        env.catalog = replace(env.catalog, compute_sessions=settings)

    async def test_a_session_without_heartbeats_is_stopped_at_its_deadline(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro")
        view = await env.start(customer)
        await env.run(500)
        beat = await sessions.heartbeat(
            env.db, env.ledger, view.id, catalog=env.catalog, clock=env.clock,
            customer_id=customer,
        )  # fmt: skip
        assert beat.last_heartbeat_at == env.clock.now()
        await env.run(540)
        assert (await env.get(view.id)).status == "active"
        await env.run(120)
        ended = await env.get(view.id)
        assert (ended.end_reason, ended.ended_at) == (
            "heartbeat",
            view.started_at + timedelta(seconds=1100),
        )
        assert ended.billed_micros == 22_917  # 1,100 s at 75,000/h = 22,916.7 up
        assert await env.wallet(customer) == (WALLET_MICROS - 22_917, 0)
        with pytest.raises(SessionEnded) as late:
            await sessions.heartbeat(
                env.db, env.ledger, view.id, catalog=env.catalog, clock=env.clock
            )
        assert late.value.extra["reason"] == "heartbeat"

    async def test_a_late_heartbeat_ends_the_session_itself(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        """No reaper ran since the deadline: the heartbeat ends and bills it at the deadline."""
        customer = await plan_customer("pro")
        view = await env.start(customer)
        env.clock.advance(700)
        with pytest.raises(SessionEnded):
            await sessions.heartbeat(
                env.db, env.ledger, view.id, catalog=env.catalog, clock=env.clock
            )
        ended = await env.get(view.id)
        assert (ended.end_reason, ended.billed_micros) == ("heartbeat", 12_500)  # 600 s
        assert await env.wallet(customer) == (WALLET_MICROS - 12_500, 0)

    async def test_flat_sessions_take_no_heartbeat(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro")
        flat = await sessions.start(
            env.db, env.ledger, catalog=env.catalog, clock=env.clock, customer_id=customer,
            product="hour", idempotency_key="f",
        )  # fmt: skip
        with pytest.raises(SessionNotMetered):
            await sessions.heartbeat(
                env.db, env.ledger, flat.session.id, catalog=env.catalog, clock=env.clock
            )


class TestTenancy:
    async def test_another_customers_session_is_not_found(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        owner, other = await plan_customer("pro"), await plan_customer("pro")
        view = await env.start(owner)
        with pytest.raises(SessionNotFound):
            await env.stop(view.id, customer=other)
        with pytest.raises(SessionNotFound):
            await sessions.heartbeat(
                env.db, env.ledger, view.id, catalog=env.catalog, clock=env.clock,
                customer_id=other,
            )  # fmt: skip
        async with env.db.transaction() as session:
            with pytest.raises(SessionNotFound):
                await sessions.get(session, view.id, clock=env.clock, customer_id=other)
        assert (await env.get(view.id)).status == "active"

    async def test_terminate_refuses_a_running_metered_session(
        self, env: Env, plan_customer: NewPlanCustomer
    ) -> None:
        customer = await plan_customer("pro")
        view = await env.start(customer)
        async with env.db.transaction() as session:
            with pytest.raises(ValueError, match="stop"):
                await sessions.terminate(session, view.id, clock=env.clock)


class TestComputeSeconds:
    CAPPED = (
        '  capped: {rank: 5, resource_tiers: [small], session_rates: {small: "0.05"},'
        " quotas: {compute_seconds: 1800}}\n  unpriced:"
    )

    async def test_an_ended_session_records_its_seconds_and_the_quota_counts_them(
        self, db: Database, ledger: Ledger, clock: FrozenClock
    ) -> None:
        catalog = load_catalog_text(METERED_CATALOG_TEXT.replace("  unpriced:", self.CAPPED))
        env = Env(db, ledger, catalog, clock)
        async with db.transaction() as session:
            customer = await subscriptions.create_customer(
                session, name="Grace", plan="capped", catalog=catalog, clock=clock
            )
        await ledger.grant(customer.id, WALLET_MICROS, idempotency_key="seed")

        view = await env.start(customer.id)
        await env.run(1000)
        await env.stop(view.id)
        await env.stop(view.id)  # stopped once: one event

        async with db.transaction() as session:
            (seconds,) = await subscriptions.quota_usage(
                session, customer.id, catalog=catalog, clock=clock, meters=["compute_seconds"]
            )
            events = await metering.list_events(session, customer_id=customer.id)
        assert (seconds.used, seconds.limit) == (1000, 1800)
        assert [(e.meter, e.value, e.session_id) for e in events] == [
            ("compute_seconds", 1000, view.id)
        ]
        with pytest.raises(QuotaExceeded):  # 1000 used + a 900 s minimum run > 1800
            await env.start(customer.id, key="second")
        assert await env.wallet(customer.id) == (WALLET_MICROS - 13_889, 0)  # 1000 s at $0.05/h
