"""Payments over HTTP, on SQLite and PostgreSQL, against the local Stripe server.

Story: without Stripe's settings, the Stripe routes answer 503 `payments-not-configured` and
manual payments still work. With them, a customer opens a checkout for `pack-50` and gets
Stripe's URL; Stripe's signed `checkout.session.completed` reaches the webhook and $55 land
in the wallet (a forged one is 400 and posts nothing); the customer lists its payments, not
another's. A customer without a card cannot pick a paid plan (402) nor turn on auto top-up
(402); with one it can, and a gateway call that takes the wallet below the threshold buys a
pack once. Operators record and refund manual payments; customers cannot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.catalog import PACK_50_BONUS_MICROS, PACK_50_MICROS
from tests.support.server import Api
from tests.support.stripe import (
    API_KEY,
    WEBHOOK_SECRET,
    FakeStripe,
    checkout_completed,
    event,
    sign,
)
from tests.support.upstream import FakeUpstream

PROBLEM = "application/problem+json"
WEBHOOK = "/v1/payments/stripe/webhook"


@pytest.fixture
async def stripe_server() -> AsyncIterator[FakeStripe]:
    server = FakeStripe()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    upstream: FakeUpstream,
    stripe_server: FakeStripe,
) -> AsyncIterator[Stack]:
    """The served stack with Stripe configured (its API is the local Stripe server)."""
    url = None if request.param == "sqlite" else await create_postgres_database()
    try:
        async with running_stack(
            tmp_path, upstream, database_url=url, stripe_api_key=API_KEY,
            stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=stripe_server.base_url,
            checkout_success_url="https://app.example/paid",
        ) as running:  # fmt: skip
            yield running
    finally:
        if url is not None:
            await drop_postgres_database(url)


async def admin_key(stack: Stack, customer_id: str) -> str:
    issued = await stack.operator.ok(
        "POST", f"/v1/customers/{customer_id}/keys", json={"scopes": ["admin"]}
    )
    return str(issued["key"])


async def paid_pack(stack: Stack, app: Api, pack: str = "pack-50") -> dict[str, object]:
    """The customer checks out `pack`; Stripe confirms it to the webhook. Returns the
    checkout."""
    checkout = await app.ok(
        "POST", "/v1/checkout", json={"credit_pack": pack, "idempotency_key": pack}
    )
    payload = event("checkout.session.completed", checkout_completed(checkout))
    async with Api(stack.base_url, "unused") as stripe_client:
        answer = await stripe_client.client.post(
            WEBHOOK, content=payload, headers={"Stripe-Signature": sign(payload)}
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "processed"
    return dict(checkout)


async def test_without_stripe_the_stripe_routes_are_503_and_the_rest_works(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with running_stack(tmp_path, upstream) as stack:
        customer_id, key = await stack.customer(credits_micros=0)
        async with Api(stack.base_url, key) as app:
            answer = await app.client.post(
                "/v1/checkout",
                json={
                    "credit_pack": "pack-10",
                    "idempotency_key": "k",
                    "success_url": "https://x.example/",
                },
            )
        assert (answer.status_code, answer.headers["content-type"]) == (503, PROBLEM)
        assert answer.json()["type"].endswith("/payments-not-configured")
        assert answer.json()["missing"] == [
            "TOLLHOUSE_STRIPE_API_KEY",
            "TOLLHOUSE_STRIPE_WEBHOOK_SECRET",
        ]
        hook = await stack.operator.client.post(WEBHOOK, content=b"{}")
        assert hook.status_code == 503

        paid = await stack.operator.ok(
            "POST", "/v1/payments",
            json={"customer_id": customer_id, "pack": "pack-50", "idempotency_key": "wire-1"},
        )  # fmt: skip
        assert (paid["provider"], paid["status"]) == ("manual", "succeeded")
        assert await stack.available(customer_id) == PACK_50_MICROS + PACK_50_BONUS_MICROS


class TestStripe:
    async def test_a_checkout_paid_through_the_webhook_credits_the_wallet(
        self, stack: Stack
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=0)
        other_id, other_key = await stack.customer(credits_micros=0)
        async with Api(stack.base_url, key) as app:
            checkout = await paid_pack(stack, app)
            assert str(checkout["url"]).startswith("https://checkout.stripe.com/")
            replay = await app.client.post(
                "/v1/checkout", json={"credit_pack": "pack-50", "idempotency_key": "pack-50"}
            )
            assert (replay.status_code, replay.json()["id"]) == (200, checkout["id"])
            shown = await app.ok("GET", f"/v1/checkout/{checkout['id']}")
            assert shown["status"] == "completed"
            [payment] = await app.ok("GET", "/v1/payments")
            assert (payment["kind"], payment["bonus_micros"]) == (
                "credit_pack",
                PACK_50_BONUS_MICROS,
            )
            events = await app.ok("GET", "/v1/events")
            assert "payment.succeeded" in [e["type"] for e in events["data"]]
        assert await stack.available(customer_id) == PACK_50_MICROS + PACK_50_BONUS_MICROS

        async with Api(stack.base_url, other_key) as other:
            assert await other.ok("GET", "/v1/payments") == []
            hidden = await other.client.get(f"/v1/payments/{payment['id']}")
            assert hidden.status_code == 404
        assert await stack.available(other_id) == 0

    async def test_a_forged_webhook_is_400_and_posts_nothing(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=0)
        async with Api(stack.base_url, key) as app:
            checkout = await app.ok(
                "POST", "/v1/checkout", json={"credit_pack": "pack-10", "idempotency_key": "k"}
            )
        payload = event("checkout.session.completed", checkout_completed(checkout))
        for header in ({}, {"Stripe-Signature": sign(payload, secret="whsec_forged")}):
            answer = await stack.operator.client.post(WEBHOOK, content=payload, headers=header)
            assert (answer.status_code, answer.headers["content-type"]) == (400, PROBLEM)
            assert answer.json()["type"].endswith("/webhook-signature-invalid")
        assert await stack.available(customer_id) == 0

    async def test_a_paid_plan_needs_a_payment_method(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer(credits_micros=0)
        async with Api(stack.base_url, await admin_key(stack, customer_id)) as admin:
            refused = await admin.client.post("/v1/subscription/change", json={"plan": "pro"})
            assert (refused.status_code, refused.headers["content-type"]) == (402, PROBLEM)
            assert refused.json()["type"].endswith("/payment-method-required")
            assert refused.json()["plan"] == "pro"
            no_card = await admin.client.put(
                f"/v1/customers/{customer_id}/auto-top-up",
                json={"enabled": True, "threshold_micros": 1, "pack": "pack-10"},
            )
            assert no_card.status_code == 402

            await paid_pack(stack, admin, "pack-10")  # the card is saved with the payment
            changed = await admin.ok("POST", "/v1/subscription/change", json={"plan": "pro"})
        assert changed["to_plan"] == "pro"

    async def test_a_gateway_call_below_the_threshold_buys_a_pack_once(
        self, stack: Stack, stripe_server: FakeStripe
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=0)
        async with Api(stack.base_url, await admin_key(stack, customer_id)) as admin:
            await paid_pack(stack, admin, "pack-10")
            stripe_server.save_card(
                str(stripe_server.posted("/v1/checkout/sessions")[0].params["customer"])
            )
            rule = await admin.ok(
                "PUT", f"/v1/customers/{customer_id}/auto-top-up",
                json={"enabled": True, "threshold_micros": 20_000_000, "pack": "pack-50"},
            )  # fmt: skip
            assert (rule["enabled"], rule["armed"]) == (True, True)

        client = openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key=key)
        for _ in range(3):
            await client.chat.completions.create(
                model="test-chat", messages=[{"role": "user", "content": "hi"}]
            )
        await client.close()
        await stack.runtime.drain()

        payments = await stack.operator.ok(
            "GET", "/v1/payments", params={"customer_id": customer_id}
        )
        assert [(p["kind"], p["status"]) for p in payments] == [
            ("auto_top_up", "succeeded"),
            ("credit_pack", "succeeded"),
        ]
        assert len(stripe_server.posted("/v1/payment_intents")) == 1
        rule = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/auto-top-up")
        assert (rule["fired_count"], rule["armed"]) == (1, True)


class TestManual:
    async def test_operators_record_and_refund_and_customers_cannot(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=0)
        body = {"customer_id": customer_id, "amount_micros": 3_000_000, "idempotency_key": "w"}
        async with Api(stack.base_url, key) as app:
            assert (await app.client.post("/v1/payments", json=body)).status_code == 403
        paid = await stack.operator.client.post("/v1/payments", json=body)
        again = await stack.operator.client.post("/v1/payments", json=body)
        assert (paid.status_code, again.status_code) == (201, 200)
        assert again.json()["id"] == paid.json()["id"]

        refund = {"amount_micros": 1_000_000, "idempotency_key": "r"}
        url = f"/v1/payments/{paid.json()['id']}/refund"
        refunded = await stack.operator.ok("POST", url, json=refund)
        assert [r["credits_reversed_micros"] for r in refunded["refunds"]] == [1_000_000]
        assert await stack.available(customer_id) == 2_000_000
        mixed = await stack.operator.client.post(
            "/v1/payments", json={**body, "pack": "pack-10", "idempotency_key": "both"}
        )
        assert mixed.status_code == 422
