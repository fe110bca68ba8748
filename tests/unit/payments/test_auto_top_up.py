"""Auto top-up, on SQLite and PostgreSQL: a customer with a card saved through a checkout
buys `pack-50` off-session when a debit takes the wallet below $5, once per crossing, also
under 50 concurrent holds and with two processes watching."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import select
from tests.support.stripe import FakeStripe, checkout_completed, event

from tollhouse.clock import FrozenClock
from tollhouse.ledger import Ledger
from tollhouse.payments import PaymentMethodRequired, Payments, PaymentsNotConfigured
from tollhouse.payments.models import ProviderCustomer
from tollhouse.payments.service import Item, get_rule, list_payments
from tollhouse.payments.service import top_ups as top_ups_service
from tollhouse.storage import Database

from .conftest import Deliver, NewCustomer, event_types, wallet

URLS = {"success_url": "https://app.example/paid", "cancel_url": "https://app.example/back"}
THRESHOLD = 5_000_000
PACK_50_TOTAL = 55_000_000
TEN = 10_000_000
HOLD = 150_000
"""50 holds of $0.15 take the $10 wallet to $2.50: the 34th crosses $5."""


async def with_card(
    db: Database, payments: Payments, deliver: Deliver, stripe_server: FakeStripe, customer: str
) -> None:
    """The customer buys pack-10 through a checkout (its card is saved): $10 in the wallet."""
    checkout = await payments.checkout(
        customer, Item("credit_pack", "pack-10"), idempotency_key="first", **URLS
    )
    await deliver(event("checkout.session.completed", checkout_completed(checkout)))
    async with db.transaction() as session:
        stripe_customer = await session.scalar(
            select(ProviderCustomer.provider_customer_id).where(
                ProviderCustomer.customer_id == customer
            )
        )
    assert stripe_customer is not None
    stripe_server.save_card(stripe_customer)


async def top_ups_of(db: Database, customer: str) -> list[tuple[str, str]]:
    async with db.transaction() as session:
        paid = await list_payments(session, customer_id=customer)
    return [(p.status, p.item) for p in paid if p.kind == "auto_top_up"]


async def spend_concurrently(ledger: Ledger, customer: str, count: int = 50) -> None:
    holds = await asyncio.gather(*(ledger.hold(customer, HOLD) for _ in range(count)))
    await asyncio.gather(*(ledger.capture(h.id, HOLD) for h in holds))


class TestConfigure:
    async def test_enabling_needs_a_card_saved_with_stripe(
        self, payments: Payments, new_customer: NewCustomer
    ) -> None:
        customer = await new_customer()
        with pytest.raises(PaymentMethodRequired) as refused:
            await payments.set_auto_top_up(
                customer, enabled=True, threshold_micros=THRESHOLD, pack="pack-50"
            )
        assert refused.value.status == 402

    async def test_enabling_without_stripe_is_not_configured(
        self, db: Database, ledger: Ledger, payments: Payments, clock: FrozenClock,
        new_customer: NewCustomer,
    ) -> None:  # fmt: skip
        missing = PaymentsNotConfigured("no", missing=["TOLLHOUSE_STRIPE_API_KEY"])
        bare = Payments(db, ledger, catalog=payments.ctx.catalog, clock=clock, stripe=missing)
        customer = await new_customer()
        with pytest.raises(PaymentsNotConfigured):
            await bare.set_auto_top_up(customer, enabled=True, threshold_micros=1, pack="pack-10")
        disabled = await bare.set_auto_top_up(
            customer, enabled=False, threshold_micros=1, pack="pack-10"
        )
        assert not disabled.enabled


class TestCrossing:
    async def test_fifty_concurrent_debits_fire_one_top_up(
        self, db: Database, payments: Payments, ledger: Ledger, deliver: Deliver,
        stripe_server: FakeStripe, new_customer: NewCustomer, clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        await with_card(db, payments, deliver, stripe_server, customer)
        await payments.set_auto_top_up(
            customer, enabled=True, threshold_micros=THRESHOLD, pack="pack-50"
        )

        await spend_concurrently(ledger, customer)
        await payments.drain()

        assert await top_ups_of(db, customer) == [("succeeded", "pack-50")]
        [charged] = stripe_server.posted("/v1/payment_intents")
        assert (charged.params["amount"], charged.params["off_session"]) == ("5000", "true")
        left = TEN - 50 * HOLD
        assert (await wallet(db, customer, clock)).available_micros == left + PACK_50_TOTAL
        async with db.transaction() as session:
            rule = await get_rule(session, customer)
        assert rule is not None and (rule.armed, rule.fired_count, rule.last_error) == (
            True,
            1,
            None,
        )
        assert (await event_types(db, customer)).count("payment.succeeded") == 2

    async def test_the_next_crossing_fires_again_and_not_before(
        self, db: Database, payments: Payments, ledger: Ledger, deliver: Deliver,
        stripe_server: FakeStripe, new_customer: NewCustomer,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        await with_card(db, payments, deliver, stripe_server, customer)
        await payments.set_auto_top_up(
            customer, enabled=True, threshold_micros=THRESHOLD, pack="pack-10"
        )
        first = await ledger.hold(customer, 6_000_000)  # $10 -> $4: crossing 1
        await payments.drain()
        assert len(await top_ups_of(db, customer)) == 1  # $4 + $10 = $14
        await ledger.capture(first.id, 6_000_000)

        await ledger.hold(customer, 8_000_000)  # $14 -> $6: above, nothing
        await payments.drain()
        assert len(await top_ups_of(db, customer)) == 1
        await ledger.hold(customer, 2_000_000)  # $6 -> $4: crossing 2
        await payments.drain()
        assert len(await top_ups_of(db, customer)) == 2
        assert len(stripe_server.posted("/v1/payment_intents")) == 2

    async def test_fifty_concurrent_claims_take_the_crossing_once(
        self, db: Database, payments: Payments, deliver: Deliver, stripe_server: FakeStripe,
        new_customer: NewCustomer,
    ) -> None:  # fmt: skip
        """As 50 processes would: each claims the crossing in the database."""
        customer = await new_customer()
        await with_card(db, payments, deliver, stripe_server, customer)
        await payments.set_auto_top_up(
            customer, enabled=True, threshold_micros=THRESHOLD, pack="pack-50"
        )

        claims = await asyncio.gather(
            *(top_ups_service.claim(payments.ctx, customer) for _ in range(50))
        )

        assert sorted(claims, key=lambda c: c or 0) == [None] * 49 + [1]

    async def test_two_processes_watching_fire_once(
        self, db: Database, payments: Payments, ledger: Ledger, deliver: Deliver,
        stripe_server: FakeStripe, new_customer: NewCustomer, clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        await with_card(db, payments, deliver, stripe_server, customer)
        await payments.set_auto_top_up(
            customer, enabled=True, threshold_micros=THRESHOLD, pack="pack-50"
        )
        other = Payments(db, ledger, catalog=payments.ctx.catalog, clock=clock,
                         stripe=payments.stripe.settings)  # fmt: skip
        await other.start()
        hold = await ledger.hold(customer, 6_000_000)
        seen = replace(hold, available_after_micros=TEN - 6_000_000)

        other.observe(seen)
        payments.observe(seen)
        await asyncio.gather(other.drain(), payments.drain())
        await other.stop()

        assert await top_ups_of(db, customer) == [("succeeded", "pack-50")]

    async def test_a_declined_card_fails_the_payment_once(
        self, db: Database, payments: Payments, ledger: Ledger, deliver: Deliver,
        stripe_server: FakeStripe, new_customer: NewCustomer, clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        await with_card(db, payments, deliver, stripe_server, customer)
        await payments.set_auto_top_up(
            customer, enabled=True, threshold_micros=THRESHOLD, pack="pack-50"
        )
        stripe_server.declining.update(c for c in stripe_server.cards)

        await spend_concurrently(ledger, customer)
        await payments.drain()

        assert await top_ups_of(db, customer) == [("failed", "pack-50")]
        async with db.transaction() as session:
            rule = await get_rule(session, customer)
        assert rule is not None and not rule.armed
        assert "insufficient funds" in (rule.last_error or "")
        assert (await event_types(db, customer)).count("payment.failed") == 1
        assert (await wallet(db, customer, clock)).available_micros == TEN - 50 * HOLD
