"""Stripe subscriptions kept in step with tollhouse's, on SQLite and PostgreSQL: a plan
checkout subscribes the customer; a failed invoice makes it `past_due` and a later paid one
`active` again; subscription updates arriving out of order leave the latest state."""

from __future__ import annotations

import time

from tests.support.stripe import FakeStripe, checkout_completed, event, invoice, subscription

from tollhouse.billing import BillingTerms
from tollhouse.billing import service as billing
from tollhouse.clock import FrozenClock
from tollhouse.payments import Payments
from tollhouse.payments.service import Item, list_payments
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions

from .conftest import Deliver, NewCustomer, event_types, wallet

URLS = {"success_url": "https://app.example/paid", "cancel_url": "https://app.example/back"}
PRO_INCLUDED = 2_000_000


async def status_of(db: Database, customer: str) -> tuple[str, str, bool]:
    async with db.transaction() as session:
        sub = await subscriptions.get_subscription(session, customer)
    return sub.plan, sub.status, sub.has_payment_method


async def subscribed(payments: Payments, deliver: Deliver, customer: str) -> str:
    """The customer subscribed to pro through a checkout; returns Stripe's subscription id."""
    checkout = await payments.checkout(customer, Item("plan", "pro"), idempotency_key="pro", **URLS)
    assert checkout.mode == "subscription"
    completed = checkout_completed(checkout)
    outcome = await deliver(event("checkout.session.completed", completed))
    assert outcome.outcome == "processed"
    return str(completed["subscription"])


class TestPlanCheckout:
    async def test_a_paid_plan_checkout_subscribes_the_customer(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()

        await subscribed(payments, deliver, customer)

        assert await status_of(db, customer) == ("pro", "active", True)
        assert (await wallet(db, customer, clock)).available_micros == PRO_INCLUDED
        assert "subscription.updated" in await event_types(db, customer)

    async def test_the_checkout_asks_stripe_for_a_monthly_subscription(
        self, payments: Payments, new_customer: NewCustomer, stripe_server: FakeStripe
    ) -> None:
        customer = await new_customer()
        await payments.checkout(customer, Item("plan", "pro"), idempotency_key="pro", **URLS)

        [opened] = stripe_server.posted("/v1/checkout/sessions")
        line = opened.params["line_items"]["0"]["price_data"]
        assert (line["unit_amount"], line["recurring"]) == ("2900", {"interval": "month"})
        assert opened.params["subscription_data"]["metadata"]["tollhouse_plan"] == "pro"


class TestInvoices:
    async def test_a_failed_payment_is_past_due_and_a_later_paid_invoice_active(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer
    ) -> None:
        customer = await new_customer()
        sub_id = await subscribed(payments, deliver, customer)
        now = int(time.time())

        failed = await deliver(
            event("invoice.payment_failed", invoice(sub_id, invoice_id="in_2"), created=now + 10)
        )
        assert failed.outcome == "processed"
        assert await status_of(db, customer) == ("pro", "past_due", True)

        paid = await deliver(
            event("invoice.paid", invoice(sub_id, invoice_id="in_2"), created=now + 20)
        )
        assert paid.outcome == "processed"
        assert await status_of(db, customer) == ("pro", "active", True)

        async with db.transaction() as session:
            [payment] = await list_payments(session, customer_id=customer)
        assert (payment.kind, payment.status, payment.amount_micros) == (
            "subscription",
            "succeeded",
            29_000_000,
        )
        types = await event_types(db, customer)
        assert types.count("payment.failed") == 1 and types.count("payment.succeeded") == 1
        assert types.count("subscription.updated") == 3  # checkout, past_due, active

    async def test_a_failure_older_than_the_payment_changes_nothing(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer
    ) -> None:
        customer = await new_customer()
        sub_id = await subscribed(payments, deliver, customer)
        now = int(time.time())

        await deliver(event("invoice.paid", invoice(sub_id, invoice_id="in_3"), created=now + 20))
        stale = await deliver(
            event("invoice.payment_failed", invoice(sub_id, invoice_id="in_3"), created=now + 10)
        )

        assert stale.outcome == "stale"
        assert await status_of(db, customer) == ("pro", "active", True)


class TestSubscriptionUpdates:
    async def test_out_of_order_updates_leave_the_latest_state(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer
    ) -> None:
        customer = await new_customer()
        sub_id = await subscribed(payments, deliver, customer)
        now = int(time.time())
        updates = [
            (now + 10, "past_due"),
            (now + 20, "active"),
            (now + 30, "past_due"),
        ]
        payloads = {
            at: event(
                "customer.subscription.updated",
                subscription(sub_id, customer_id=customer, status=status),
                created=at,
            )
            for at, status in updates
        }

        latest = await deliver(payloads[now + 30])
        middle = await deliver(payloads[now + 20])
        oldest = await deliver(payloads[now + 10])

        assert [latest.outcome, middle.outcome, oldest.outcome] == ["processed", "stale", "stale"]
        assert await status_of(db, customer) == ("pro", "past_due", True)

        newer = event(
            "customer.subscription.updated",
            subscription(sub_id, customer_id=customer, status="active"),
            created=now + 40,
        )
        assert (await deliver(newer)).outcome == "processed"
        assert await status_of(db, customer) == ("pro", "active", True)

    async def test_a_deleted_subscription_cancels_and_older_updates_do_not_revive_it(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer
    ) -> None:
        customer = await new_customer()
        sub_id = await subscribed(payments, deliver, customer)
        now = int(time.time())

        deleted = subscription(sub_id, customer_id=customer, status="canceled")
        await deliver(event("customer.subscription.deleted", deleted, created=now + 50))
        earlier = subscription(sub_id, customer_id=customer, status="active")
        late = await deliver(event("customer.subscription.updated", earlier, created=now + 40))

        assert late.outcome == "stale"
        assert await status_of(db, customer) == ("free", "canceled", True)

    async def test_a_foreign_subscription_is_ignored(self, deliver: Deliver) -> None:
        foreign = {"id": "sub_x", "object": "subscription", "status": "active", "metadata": {}}
        outcome = await deliver(event("customer.subscription.updated", foreign))
        assert outcome.outcome == "ignored"


class TestTollhouseInvoices:
    async def test_a_stripe_invoice_paid_marks_the_periods_invoice_paid_once(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        sub_id = await subscribed(payments, deliver, customer)
        terms = BillingTerms()
        await billing.close_periods(db, catalog=payments.ctx.catalog, terms=terms, clock=clock)
        early = await deliver(event("invoice.paid", invoice(sub_id, invoice_id="in_early")))
        assert early.outcome == "processed"

        first = await billing.apply_subscription_payments(db, clock=clock)
        again = await billing.apply_subscription_payments(db, clock=clock)
        await deliver(event("invoice.paid", invoice(sub_id, invoice_id="in_next")))
        waiting = await billing.apply_subscription_payments(db, clock=clock)

        async with db.sessions() as session:
            [fee] = await billing.list_invoices(session, customer_id=customer)
        assert first == [fee.id] and again == [] and waiting == []  # nothing open for in_next
        assert (fee.status, fee.payment_reference, fee.total_micros) == (
            "paid",
            "in_early",
            29_000_000,
        )
        assert (await event_types(db, customer)).count("invoice.paid") == 1
