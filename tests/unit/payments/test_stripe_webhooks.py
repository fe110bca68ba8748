"""Stripe webhooks through `Payments`, on SQLite and PostgreSQL, with payloads signed exactly
as Stripe signs them: a checkout of `pack-50` is opened on the local Stripe server, then its
`checkout.session.completed` is delivered, forged, unsigned, stale, replayed, five times in a
row and five times at once. Only signed, fresh deliveries are applied, and each event once.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import stripe
from sqlalchemy import func, select
from tests.support.stripe import (
    WEBHOOK_SECRET,
    FakeStripe,
    charge_refunded,
    checkout_completed,
    event,
    sign,
)

from tollhouse.clock import FrozenClock
from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.payments import (
    CheckoutView,
    Payments,
    PaymentsNotConfigured,
    WebhookSignatureInvalid,
)
from tollhouse.payments.models import Payment, ProcessedProviderEvent
from tollhouse.payments.service import Item
from tollhouse.sessions import service as sessions
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions

from .conftest import Deliver, NewCustomer, event_types, wallet

PACK_50_WITH_BONUS = 55_000_000
URLS = {"success_url": "https://app.example/paid", "cancel_url": "https://app.example/back"}


async def open_checkout(payments: Payments, customer: str, pack: str = "pack-50") -> CheckoutView:
    return await payments.checkout(
        customer, Item("credit_pack", pack), idempotency_key=f"buy-{pack}", **URLS
    )


async def stored(db: Database) -> tuple[int, int]:
    """(payments, processed events) stored."""
    async with db.transaction() as session:
        paid = await session.scalar(select(func.count()).select_from(Payment))
        seen = await session.scalar(select(func.count()).select_from(ProcessedProviderEvent))
    return int(paid or 0), int(seen or 0)


class TestSignature:
    async def test_a_signed_event_posts_the_pack(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        checkout = await open_checkout(payments, customer)

        outcome = await deliver(event("checkout.session.completed", checkout_completed(checkout)))

        assert outcome.outcome == "processed"
        assert (await wallet(db, customer, clock)).available_micros == PACK_50_WITH_BONUS
        assert await event_types(db, customer) == ["payment.succeeded"]

    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "t=1,v1=00",
            "garbage",
            "FORGED",
            "STALE",
        ],
    )
    async def test_unsigned_forged_and_stale_events_post_nothing(
        self, db: Database, payments: Payments, new_customer: NewCustomer, clock: FrozenClock,
        header: str | None,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        payload = event("checkout.session.completed", checkout_completed(
            await open_checkout(payments, customer)))  # fmt: skip
        if header == "FORGED":
            header = sign(payload, secret="whsec_someone_else")
        elif header == "STALE":
            header = sign(payload, timestamp=int(time.time()) - 301)

        with pytest.raises(WebhookSignatureInvalid):
            await payments.handle_stripe_webhook(payload.encode(), header)

        assert (await wallet(db, customer, clock)).available_micros == 0
        assert await stored(db) == (0, 0)

    async def test_a_tampered_body_is_refused(
        self, db: Database, payments: Payments, new_customer: NewCustomer
    ) -> None:
        customer = await new_customer()
        obj = checkout_completed(await open_checkout(payments, customer))
        payload = event("checkout.session.completed", obj)
        header = sign(payload)
        tampered = payload.replace(str(obj["amount_total"]), str(obj["amount_total"] * 10))

        with pytest.raises(WebhookSignatureInvalid):
            await payments.handle_stripe_webhook(tampered.encode(), header)
        assert await stored(db) == (0, 0)

    async def test_a_replay_of_a_captured_delivery_is_refused_once_stale(
        self, db: Database, payments: Payments, new_customer: NewCustomer, clock: FrozenClock
    ) -> None:
        """An attacker re-sends a delivery it captured (the same bytes, the same header): within
        the tolerance it is a duplicate (nothing more posted), after it refused."""
        customer = await new_customer()
        payload = event("checkout.session.completed", checkout_completed(
            await open_checkout(payments, customer)))  # fmt: skip
        captured = sign(payload, timestamp=int(time.time()) - 200)
        first = await payments.handle_stripe_webhook(payload.encode(), captured)
        again = await payments.handle_stripe_webhook(payload.encode(), captured)
        assert (first.outcome, again.outcome) == ("processed", "duplicate")

        late = sign(payload, timestamp=int(time.time()) - 400)
        with pytest.raises(WebhookSignatureInvalid):
            await payments.handle_stripe_webhook(payload.encode(), late)
        assert (await wallet(db, customer, clock)).available_micros == PACK_50_WITH_BONUS
        assert await stored(db) == (1, 1)

    async def test_not_json_is_refused(self, payments: Payments) -> None:
        body = "not json"
        with pytest.raises(WebhookSignatureInvalid):
            await payments.handle_stripe_webhook(body.encode(), sign(body))

    async def test_without_stripe_the_webhook_is_not_configured(
        self, db: Database, ledger: Ledger, payments: Payments, clock: FrozenClock
    ) -> None:
        missing = PaymentsNotConfigured("no", missing=["TOLLHOUSE_STRIPE_API_KEY"])
        bare = Payments(db, ledger, catalog=payments.ctx.catalog, clock=clock, stripe=missing)
        payload = event("checkout.session.completed", {"id": "cs_x"})
        with pytest.raises(PaymentsNotConfigured) as refused:
            await bare.handle_stripe_webhook(payload.encode(), sign(payload))
        assert refused.value.status == 503
        assert refused.value.extra["missing"] == ["TOLLHOUSE_STRIPE_API_KEY"]


class TestOnce:
    async def test_five_deliveries_in_a_row_post_once(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        payload = event("checkout.session.completed", checkout_completed(
            await open_checkout(payments, customer)))  # fmt: skip

        outcomes = [(await deliver(payload)).outcome for _ in range(5)]

        assert outcomes == ["processed"] + ["duplicate"] * 4
        assert (await wallet(db, customer, clock)).available_micros == PACK_50_WITH_BONUS
        assert await event_types(db, customer) == ["payment.succeeded"]
        assert await stored(db) == (1, 1)

    async def test_five_deliveries_at_once_post_once(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        payload = event("checkout.session.completed", checkout_completed(
            await open_checkout(payments, customer)))  # fmt: skip

        outcomes = await asyncio.gather(*(deliver(payload) for _ in range(5)))

        assert sorted(o.outcome for o in outcomes) == ["duplicate"] * 4 + ["processed"]
        assert (await wallet(db, customer, clock)).available_micros == PACK_50_WITH_BONUS
        assert await event_types(db, customer) == ["payment.succeeded"]
        assert await stored(db) == (1, 1)
        async with db.transaction() as session:
            assert len(await ledger_service.transactions(session, customer)) == 2

    async def test_another_event_of_the_same_payment_posts_nothing_more(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        obj = checkout_completed(await open_checkout(payments, customer))

        await deliver(event("checkout.session.completed", obj))
        later = await deliver(event("checkout.session.async_payment_succeeded", obj))

        assert later.outcome == "processed"
        assert (await wallet(db, customer, clock)).available_micros == PACK_50_WITH_BONUS
        assert await event_types(db, customer) == ["payment.succeeded"]

    async def test_unknown_types_and_foreign_checkouts_are_ignored_once(
        self, db: Database, deliver: Deliver
    ) -> None:
        other = await deliver(event("customer.created", {"id": "cus_x", "object": "customer"}))
        foreign = await deliver(
            event("checkout.session.completed", {"id": "cs_not_ours", "payment_status": "paid"})
        )
        assert (other.outcome, foreign.outcome) == ("ignored", "ignored")
        assert "did not open" in foreign.detail
        assert await stored(db) == (0, 2)


class TestCheckoutPayments:
    async def test_a_checkout_saves_a_payment_method_and_calls_stripe_with_keys(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        stripe_server: FakeStripe,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        checkout = await open_checkout(payments, customer)
        again = await open_checkout(payments, customer)

        assert (again.id, again.url, again.replayed) == (checkout.id, checkout.url, True)
        [made] = stripe_server.posted("/v1/customers")
        assert made.params["metadata"] == {"tollhouse_customer": customer}
        assert made.idempotency_key == f"tollhouse-customer-{customer}"
        [opened] = stripe_server.posted("/v1/checkout/sessions")
        assert opened.idempotency_key == f"tollhouse-checkout-{checkout.id}"
        assert opened.params["mode"] == "payment"
        assert opened.params["line_items"]["0"]["price_data"] == {
            "currency": "usd",
            "unit_amount": "5000",
            "product_data": {"name": "Credit pack pack-50"},
        }
        assert opened.params["payment_intent_data"]["setup_future_usage"] == "off_session"
        assert opened.params["metadata"]["tollhouse_checkout"] == checkout.id
        assert checkout.url == f"https://checkout.stripe.com/c/pay/{checkout.provider_session_id}"

        await deliver(event("checkout.session.completed", checkout_completed(checkout)))
        async with db.transaction() as session:
            sub = await subscriptions.get_subscription(session, customer)
        assert sub.has_payment_method

    async def test_a_session_pack_checkout_buys_the_pack_from_the_payment(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        checkout = await payments.checkout(
            customer, Item("session_pack", "day", 5), idempotency_key="s", **URLS
        )

        await deliver(event("checkout.session.completed", checkout_completed(checkout)))

        async with db.transaction() as session:
            quota = await sessions.quota(session, customer, catalog=payments.ctx.catalog)
        assert [(q.product, q.sessions_left) for q in quota] == [("day", 5)]
        assert (await wallet(db, customer, clock)).available_micros == 0

    async def test_charge_refunded_takes_back_the_refunded_share(
        self, db: Database, payments: Payments, deliver: Deliver, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        obj = checkout_completed(await open_checkout(payments, customer), payment_intent="pi_1")
        await deliver(event("checkout.session.completed", obj))

        half = event("charge.refunded", charge_refunded("pi_1", amount=5000, refunded=2500))
        full = event("charge.refunded", charge_refunded("pi_1", amount=5000, refunded=5000))
        # Out of order: the full refund first, then the older partial one.
        assert (await deliver(full)).outcome == "processed"
        assert (await deliver(half)).outcome == "processed"
        assert (await deliver(full)).outcome == "duplicate"

        assert (await wallet(db, customer, clock)).available_micros == 0
        assert (await event_types(db, customer)).count("payment.refunded") == 1

    async def test_a_delivery_signed_with_the_secret_is_what_the_library_checks(self) -> None:
        payload = json.dumps({"id": "evt_1", "object": "event"})
        header = sign(payload)
        assert stripe.WebhookSignature.verify_header(payload, header, WEBHOOK_SECRET, 300)
