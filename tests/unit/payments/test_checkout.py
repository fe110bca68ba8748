"""Checkout and the payment-method rule, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from tests.support.stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, checkout_completed, event

from tollhouse.catalog import Catalog, PlanNotFound
from tollhouse.clock import FrozenClock
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.ledger import Ledger
from tollhouse.payments import PaymentMethodRequired, PaymentProviderError, Payments, StripeSettings
from tollhouse.payments.service import Item, get_checkout, require_payment_method
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions

from .conftest import Deliver, NewCustomer, wallet

URLS = {"success_url": "https://app.example/paid", "cancel_url": "https://app.example/back"}


class TestCheckout:
    async def test_the_same_key_for_another_item_is_refused(
        self, payments: Payments, new_customer: NewCustomer
    ) -> None:
        customer = await new_customer()
        await payments.checkout(
            customer, Item("credit_pack", "pack-10"), idempotency_key="k", **URLS
        )

        with pytest.raises(IdempotencyKeyReused) as refused:
            await payments.checkout(
                customer, Item("credit_pack", "pack-50"), idempotency_key="k", **URLS
            )
        assert refused.value.extra["fields"] == ["item"]

    @pytest.mark.parametrize(
        ("item", "error"),
        [
            (Item("plan", "free"), InvalidInput),
            (Item("plan", "nope"), PlanNotFound),
            (Item("session_pack", "day", 7), InvalidInput),
        ],
    )
    async def test_what_cannot_be_sold_is_refused_before_stripe(
        self, payments: Payments, new_customer: NewCustomer, stripe_server: FakeStripe,
        item: Item, error: type[Exception],
    ) -> None:  # fmt: skip
        customer = await new_customer()
        with pytest.raises(error):
            await payments.checkout(customer, item, idempotency_key="k", **URLS)
        assert stripe_server.requests == []

    async def test_stripe_unreachable_is_a_provider_error_and_a_replay_finishes_it(
        self, db: Database, ledger: Ledger, payments: Payments, clock: FrozenClock,
        new_customer: NewCustomer,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        down = StripeSettings(API_KEY, WEBHOOK_SECRET, api_base="http://127.0.0.1:9")
        offline = Payments(db, ledger, catalog=payments.ctx.catalog, clock=clock, stripe=down)
        try:
            with pytest.raises(PaymentProviderError) as failed:
                await offline.checkout(
                    customer, Item("credit_pack", "pack-10"), idempotency_key="k", **URLS
                )
        finally:
            await offline.stop()
        assert failed.value.status == 502

        finished = await payments.checkout(
            customer, Item("credit_pack", "pack-10"), idempotency_key="k", **URLS
        )
        assert (finished.status, finished.replayed) == ("open", True)
        assert finished.url is not None

    async def test_a_one_off_plan_checkout_moves_the_customer_to_it(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        checkout = await payments.checkout(
            customer, Item("plan", "lifetime"), idempotency_key="k", **URLS
        )
        assert checkout.mode == "payment"

        await deliver(event("checkout.session.completed", checkout_completed(checkout)))

        async with db.transaction() as session:
            sub = await subscriptions.get_subscription(session, customer)
            shown = await get_checkout(session, checkout.id, customer_id=customer)
        assert (sub.plan, sub.has_payment_method, shown.status) == ("lifetime", True, "completed")
        assert (await wallet(db, customer, clock)).available_micros == 0

    async def test_an_unpaid_completion_posts_nothing_until_the_async_payment(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        checkout = await payments.checkout(
            customer, Item("credit_pack", "pack-10"), idempotency_key="k", **URLS
        )
        pending = checkout_completed(checkout, paid=False)

        assert (await deliver(event("checkout.session.completed", pending))).outcome == "ignored"
        assert (await wallet(db, customer, clock)).available_micros == 0
        paid = checkout_completed(checkout)
        await deliver(event("checkout.session.async_payment_succeeded", paid))
        assert (await wallet(db, customer, clock)).available_micros == 10_000_000


class TestPaymentMethodRule:
    async def test_a_paid_plan_needs_a_payment_method_and_a_free_one_does_not(
        self, db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer = await new_customer()
        async with db.transaction() as session:
            await require_payment_method(session, customer, "free", catalog=catalog)
            with pytest.raises(PaymentMethodRequired) as refused:
                await require_payment_method(session, customer, "pro", catalog=catalog)
        assert (refused.value.status, refused.value.extra) == (402, {"plan": "pro"})

        async with db.transaction() as session:
            await subscriptions.set_payment_method(
                session,
                customer,
                True,
                catalog=catalog,
                clock=clock,
            )
            await require_payment_method(session, customer, "pro", catalog=catalog)
