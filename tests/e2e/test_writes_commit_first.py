"""Every write route answers after its commit: its effect is visible to the next request.

Story: a client creates a key and deletes it at once; grants credits and reads the balance at
once; and so on for every write route of the control API. To make a late commit show, every
transaction here waits `COMMIT_DELAY_SECONDS` before its COMMIT, and every request goes on a
new connection: a route that answered before its commit would let the next request read the
state before it.

A route added later without a scenario here fails `test_every_write_route_has_a_scenario`.
The gateway's model routes share one path (`gateway/settle.py`: a whole answer is sent, and a
stream's end passed on, once its capture and usage events are committed); chat completions
stands for them all, whole and streamed.
Stripe is configured, on the local Stripe server: the webhook's scenario sends a delivery
signed as Stripe signs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.server import Api
from tests.support.stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, checkout_completed, sign
from tests.support.stripe import event as stripe_event
from tests.support.upstream import FakeUpstream

from tollhouse.api.app import create_app
from tollhouse.events import service as events
from tollhouse.gateway.call import COUNT_TOKENS_PATH, ROUTES
from tollhouse.storage import Database

COMMIT_DELAY_SECONDS = 0.3
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

Scenario = Callable[[Stack], Awaitable[None]]
SCENARIOS: dict[tuple[str, str], Scenario] = {}


def scenario(method: str, path: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[(method, path)] = function
        return function

    return register


@pytest.fixture
def late_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `Database.transaction` waits before its COMMIT."""
    real = Database.transaction

    @asynccontextmanager
    async def slow(self: Database) -> AsyncIterator[AsyncSession]:
        async with real(self) as session:
            yield session
            await asyncio.sleep(COMMIT_DELAY_SECONDS)

    monkeypatch.setattr(Database, "transaction", slow)


async def customer_key(stack: Stack, *, credits_micros: int = 1_000_000) -> tuple[str, Api]:
    """A customer with credits and an API client on its own key (close it)."""
    customer_id, key = await stack.customer(credits_micros=credits_micros)
    return customer_id, Api(stack.base_url, key, keep_alive=False)


@scenario("POST", "/v1/customers")
async def create_customer(stack: Stack) -> None:
    created = await stack.operator.ok("POST", "/v1/customers", json={"name": "Ada"})
    assert (await stack.operator.ok("GET", f"/v1/customers/{created['id']}"))["name"] == "Ada"


@scenario("POST", "/v1/customers/{customer_id}/keys")
async def create_key(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    issued = await stack.operator.ok("POST", f"/v1/customers/{customer_id}/keys", json={})
    revoked = await stack.operator.ok("DELETE", f"/v1/keys/{issued['id']}")
    assert revoked["revoked_at"] is not None


@scenario("POST", "/v1/keys/{key_id}/rotate")
async def rotate_key(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    keys = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/keys")
    rotated = await stack.operator.ok(
        "POST", f"/v1/keys/{keys[0]['id']}/rotate", json={"grace_seconds": 0}
    )
    async with Api(stack.base_url, rotated["key"], keep_alive=False) as successor:
        assert (await successor.ok("GET", "/v1/customers/me"))["id"] == customer_id


@scenario("DELETE", "/v1/keys/{key_id}")
async def revoke_key(stack: Stack) -> None:
    customer_id, app = await customer_key(stack)
    async with app:
        keys = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/keys")
        await stack.operator.ok("DELETE", f"/v1/keys/{keys[0]['id']}")
        assert (await app.client.get("/v1/customers/me")).status_code == 401


@scenario("POST", "/v1/customers/{customer_id}/credits/grants")
async def grant(stack: Stack) -> None:
    customer_id, _ = await stack.customer(credits_micros=0)
    url = f"/v1/customers/{customer_id}/credits/grants"
    await stack.operator.ok("POST", url, json={"amount_micros": 7, "idempotency_key": "g"})
    balance = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/balance")
    assert balance["available_micros"] == 7


@scenario("PUT", "/v1/customers/{customer_id}/overdraft")
async def overdraft(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    url = f"/v1/customers/{customer_id}/overdraft"
    await stack.operator.ok("PUT", url, json={"limit_micros": 500})
    balance = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/balance")
    assert balance["overdraft_limit_micros"] == 500


@scenario("PUT", "/v1/customers/{customer_id}/credit-alerts")
async def set_credit_alert(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    url = f"/v1/customers/{customer_id}/credit-alerts"
    await stack.operator.ok("PUT", url, json={"threshold_micros": 500})
    alert = await stack.operator.ok("GET", url)
    assert alert["threshold_micros"] == 500


@scenario("DELETE", "/v1/customers/{customer_id}/credit-alerts")
async def remove_credit_alert(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    url = f"/v1/customers/{customer_id}/credit-alerts"
    await stack.operator.ok("PUT", url, json={"threshold_percent": 5})
    removed = await stack.operator.client.delete(url)
    assert removed.status_code == 204
    assert (await stack.operator.client.get(url)).status_code == 404


@scenario("DELETE", "/v1/grants/{grant_id}")
async def revoke_grant(stack: Stack) -> None:
    customer_id, _ = await stack.customer(credits_micros=0)
    url = f"/v1/customers/{customer_id}/credits/grants"
    granted = await stack.operator.ok(
        "POST", url, json={"amount_micros": 7, "idempotency_key": "g"}
    )
    await stack.operator.ok("DELETE", f"/v1/grants/{granted['id']}")
    balance = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/balance")
    assert balance["available_micros"] == 0


async def authorized(app: Api) -> str:
    decision = await app.ok(
        "POST", "/v1/authorize", json={"model": "test-chat", "usage": {"input_tokens": 5}}
    )
    return str(decision["hold"]["id"])


@scenario("POST", "/v1/authorize")
async def authorize(stack: Stack) -> None:
    _, app = await customer_key(stack)
    async with app:
        hold_id = await authorized(app)
        assert (await app.ok("GET", f"/v1/holds/{hold_id}"))["status"] == "open"


@scenario("POST", "/v1/holds/{hold_id}/capture")
async def capture(stack: Stack) -> None:
    _, app = await customer_key(stack)
    async with app:
        hold_id = await authorized(app)
        await app.ok("POST", f"/v1/holds/{hold_id}/capture", json={"amount_micros": 2})
        assert (await app.ok("GET", f"/v1/holds/{hold_id}"))["status"] == "captured"


@scenario("POST", "/v1/holds/{hold_id}/void")
async def void(stack: Stack) -> None:
    _, app = await customer_key(stack)
    async with app:
        hold_id = await authorized(app)
        await app.ok("POST", f"/v1/holds/{hold_id}/void")
        assert (await app.ok("GET", f"/v1/holds/{hold_id}"))["status"] == "voided"


@scenario("POST", "/v1/usage/events")
async def usage_events(stack: Stack) -> None:
    _, app = await customer_key(stack)
    async with app:
        event = {"id": "e1", "meter": "images", "value": 2}
        await app.ok("POST", "/v1/usage/events", json={"events": [event]})
        usage = await app.ok("GET", "/v1/usage")
        assert {b["meter"]: b["value"] for b in usage["buckets"]}["images"] == 2


@scenario("POST", "/v1/chat/completions")
async def chat_completion(stack: Stack) -> None:
    """A whole answer and a stream: each charged (nothing held) and recorded on arrival."""
    customer_id, app = await customer_key(stack)
    async with app:
        costs = []
        for stream in (False, True):
            body = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}
            answer = await app.client.post("/v1/chat/completions", json=body | {"stream": stream})
            assert answer.status_code == 200, answer.text
            if stream:
                head, _, cost = answer.text.rpartition(": x-tollhouse-cost-micros=")
                assert head.endswith("data: [DONE]\n\n"), answer.text
                costs.append(int(cost))
            else:
                costs.append(int(answer.headers["x-tollhouse-cost-micros"]))
            balance = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/balance")
            assert balance["held_micros"] == 0, balance
            assert balance["available_micros"] == 1_000_000 - sum(costs) < 1_000_000
            usage = await app.ok("GET", "/v1/usage")
            assert {b["meter"]: b["value"] for b in usage["buckets"]}["api_calls"] == len(costs)


@scenario("POST", "/v1/subscription/change")
async def change_plan(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    url = f"/v1/subscription/change?customer_id={customer_id}"
    await stack.operator.ok("POST", url, json={"plan": "pro"})
    shown = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/subscription")
    assert shown["plan"] == "pro"


@scenario("POST", "/v1/subscription/cancel")
async def cancel(stack: Stack) -> None:
    customer_id, _ = await stack.customer(plan="pro")
    url = f"/v1/subscription/cancel?customer_id={customer_id}"
    await stack.operator.ok("POST", url, json={"at_period_end": True})
    shown = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/subscription")
    assert shown["cancel_at_period_end"] is True


@scenario("POST", "/v1/subscription/resume")
async def resume(stack: Stack) -> None:
    customer_id, _ = await stack.customer(plan="pro")
    query = f"?customer_id={customer_id}"
    await stack.operator.ok("POST", "/v1/subscription/cancel" + query, json={})
    await stack.operator.ok("POST", "/v1/subscription/resume" + query)
    shown = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/subscription")
    assert shown["cancel_at_period_end"] is False


@scenario("PUT", "/v1/customers/{customer_id}/subscription")
async def set_plan(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    url = f"/v1/customers/{customer_id}/subscription"
    await stack.operator.ok("PUT", url, json={"plan": "pro"})
    assert (await stack.operator.ok("GET", url))["plan"] == "pro"


@scenario("PUT", "/v1/customers/{customer_id}/subscription/payment-method")
async def payment_method(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    url = f"/v1/customers/{customer_id}/subscription"
    await stack.operator.ok("PUT", url + "/payment-method", json={"has_payment_method": True})
    assert (await stack.operator.ok("GET", url))["has_payment_method"] is True


@scenario("POST", "/v1/sessions")
async def start_session(stack: Stack) -> None:
    _, app = await customer_key(stack)
    async with app:
        body = {"product": "imaging", "idempotency_key": "s"}
        started = await app.ok("POST", "/v1/sessions", json=body)
        assert [s["id"] for s in await app.ok("GET", "/v1/sessions/current")] == [started["id"]]


@scenario("POST", "/v1/sessions/{session_id}/terminate")
async def terminate_session(stack: Stack) -> None:
    _, app = await customer_key(stack)
    async with app:
        body = {"product": "imaging", "idempotency_key": "s"}
        started = await app.ok("POST", "/v1/sessions", json=body)
        await app.ok("POST", f"/v1/sessions/{started['id']}/terminate")
        assert await app.ok("GET", "/v1/sessions/current") == []


@scenario("POST", "/v1/sessions/estimate")
async def estimate_session(stack: Stack) -> None:
    _, app = await customer_key(stack)
    async with app:
        body = {"resource_tier": "small", "duration_seconds": 3600}
        assert (await app.ok("POST", "/v1/sessions/estimate", json=body))["cost_micros"] == 75_000


@scenario("POST", "/v1/sessions/{session_id}/heartbeat")
async def heartbeat_and_stop_metered_session(stack: Stack) -> None:
    _, app = await customer_key(stack)
    async with app:
        body = {"resource_tier": "small", "idempotency_key": "m"}
        started = await app.ok("POST", "/v1/sessions", json=body)
        beat = await app.ok("POST", f"/v1/sessions/{started['id']}/heartbeat")
        seen = await app.ok("GET", f"/v1/sessions/{started['id']}")
        assert seen["last_heartbeat_at"] == beat["last_heartbeat_at"]
        stopped = await app.ok("POST", f"/v1/sessions/{started['id']}/terminate")
        seen = await app.ok("GET", f"/v1/sessions/{started['id']}")
        assert seen["settled_at"] == stopped["settled_at"] is not None


@scenario("POST", "/v1/sessions/quota/add")
async def buy_session_pack(stack: Stack) -> None:
    _, app = await customer_key(stack, credits_micros=5_000_000)
    async with app:
        body = {"product": "analysis", "sessions": 5, "idempotency_key": "p"}
        await app.ok("POST", "/v1/sessions/quota/add", json=body)
        quota = await app.ok("GET", "/v1/sessions/quota")
        assert {q["product"]: q["sessions_left"] for q in quota["products"]}["analysis"] == 5


async def webhook_endpoint(stack: Stack) -> str:
    """A new webhook endpoint taking every event; its id. Its URL refuses connections."""
    created = await stack.operator.ok(
        "POST", "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hooks"}
    )
    return str(created["id"])


@scenario("POST", "/v1/webhook-endpoints")
async def create_webhook_endpoint(stack: Stack) -> None:
    endpoint_id = await webhook_endpoint(stack)
    assert (await stack.operator.ok("GET", f"/v1/webhook-endpoints/{endpoint_id}"))["enabled"]


@scenario("PATCH", "/v1/webhook-endpoints/{endpoint_id}")
async def update_webhook_endpoint(stack: Stack) -> None:
    url = f"/v1/webhook-endpoints/{await webhook_endpoint(stack)}"
    await stack.operator.ok("PATCH", url, json={"enabled": False})
    assert (await stack.operator.ok("GET", url))["enabled"] is False


@scenario("DELETE", "/v1/webhook-endpoints/{endpoint_id}")
async def delete_webhook_endpoint(stack: Stack) -> None:
    url = f"/v1/webhook-endpoints/{await webhook_endpoint(stack)}"
    await stack.operator.ok("DELETE", url)
    assert (await stack.operator.client.get(url)).status_code == 404


@scenario("POST", "/v1/webhook-deliveries/{delivery_id}/retry")
async def retry_webhook_delivery(stack: Stack) -> None:
    """A delivery whose first attempt failed (connection refused) waits 5 s or more;
    retried, it is due now (or the worker has attempted it again already)."""
    await webhook_endpoint(stack)
    async with stack.runtime.db.transaction() as session:
        await events.emit(session, customer_id=None, type="catalog.changed", data={})
    await stack.runtime.webhooks.dispatcher.dispatch()
    async with asyncio.timeout(20):
        while True:
            (waiting,) = (await stack.operator.ok("GET", "/v1/webhook-deliveries"))["data"]
            if waiting["attempt_count"] == 1:
                break
            await asyncio.sleep(0.05)
    url = f"/v1/webhook-deliveries/{waiting['id']}"
    assert datetime.fromisoformat(waiting["next_attempt_at"]) > datetime.now(UTC)
    await stack.operator.ok("POST", url + "/retry")
    shown = await stack.operator.ok("GET", url)
    due_now = datetime.fromisoformat(shown["next_attempt_at"]) <= datetime.now(UTC)
    assert due_now or shown["attempt_count"] > 1, shown


@scenario("PATCH", "/v1/customers/{customer_id}")
async def set_country(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    await stack.operator.ok("PATCH", f"/v1/customers/{customer_id}", json={"country": "DE"})
    assert (await stack.operator.ok("GET", f"/v1/customers/{customer_id}"))["country"] == "DE"


async def open_invoice(stack: Stack) -> str:
    """A pro customer's first invoice, closed: its id."""
    customer_id, _ = await stack.customer(plan="pro")
    await stack.operator.ok("POST", "/v1/billing/close")
    (invoice,) = await stack.operator.ok("GET", f"/v1/invoices?customer_id={customer_id}")
    return str(invoice["id"])


@scenario("POST", "/v1/billing/close")
async def close_periods(stack: Stack) -> None:
    invoice_id = await open_invoice(stack)
    assert (await stack.operator.ok("GET", f"/v1/invoices/{invoice_id}"))["status"] == "open"


@scenario("POST", "/v1/invoices/{invoice_id}/pay")
async def pay_invoice(stack: Stack) -> None:
    invoice_id = await open_invoice(stack)
    await stack.operator.ok("POST", f"/v1/invoices/{invoice_id}/pay", json={})
    assert (await stack.operator.ok("GET", f"/v1/invoices/{invoice_id}"))["status"] == "paid"


@scenario("POST", "/v1/invoices/{invoice_id}/void")
async def void_invoice(stack: Stack) -> None:
    invoice_id = await open_invoice(stack)
    await stack.operator.ok("POST", f"/v1/invoices/{invoice_id}/void")
    assert (await stack.operator.ok("GET", f"/v1/invoices/{invoice_id}"))["status"] == "void"


@scenario("POST", "/v1/invoices/{invoice_id}/mark-uncollectible")
async def mark_uncollectible(stack: Stack) -> None:
    invoice_id = await open_invoice(stack)
    await stack.operator.ok("POST", f"/v1/invoices/{invoice_id}/mark-uncollectible")
    shown = await stack.operator.ok("GET", f"/v1/invoices/{invoice_id}")
    assert shown["status"] == "uncollectible"


@scenario("POST", "/v1/refunds")
async def refund(stack: Stack) -> None:
    customer_id, app = await customer_key(stack, credits_micros=5_000_000)
    async with app:
        body = {"product": "imaging", "idempotency_key": "s"}
        started = await app.ok("POST", "/v1/sessions", json=body)
    refund = {"hold_id": started["hold_id"], "idempotency_key": "r"}
    await stack.operator.ok("POST", "/v1/refunds", json=refund)
    balance = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/balance")
    assert balance["available_micros"] == 5_000_000
    notes = await stack.operator.ok("GET", f"/v1/invoices?customer_id={customer_id}")
    assert [n["status"] for n in notes] == ["paid"]


async def paid_checkout(stack: Stack, app: Api, pack: str = "pack-10") -> dict[str, Any]:
    """The customer checks out `pack` and Stripe's signed completion reaches the webhook."""
    checkout: dict[str, Any] = await app.ok(
        "POST", "/v1/checkout", json={"credit_pack": pack, "idempotency_key": pack}
    )
    payload = stripe_event("checkout.session.completed", checkout_completed(checkout))
    answer = await app.client.post(
        "/v1/payments/stripe/webhook", content=payload, headers={"Stripe-Signature": sign(payload)}
    )
    assert answer.status_code == 200, answer.text
    return checkout


@scenario("POST", "/v1/checkout")
async def open_checkout(stack: Stack) -> None:
    _, app = await customer_key(stack)
    async with app:
        body = {"credit_pack": "pack-10", "idempotency_key": "c"}
        opened = await app.ok("POST", "/v1/checkout", json=body)
        shown = await app.ok("GET", f"/v1/checkout/{opened['id']}")
        assert (shown["status"], shown["url"]) == ("open", opened["url"])


@scenario("POST", "/v1/payments/stripe/webhook")
async def stripe_webhook(stack: Stack) -> None:
    customer_id, app = await customer_key(stack, credits_micros=0)
    async with app:
        await paid_checkout(stack, app)
        balance = await app.ok("GET", f"/v1/customers/{customer_id}/balance")
        assert balance["available_micros"] == 10_000_000


@scenario("PUT", "/v1/customers/{customer_id}/auto-top-up")
async def auto_top_up(stack: Stack) -> None:
    customer_id, app = await customer_key(stack)
    async with app:
        await paid_checkout(stack, app)
    url = f"/v1/customers/{customer_id}/auto-top-up"
    rule = {"enabled": True, "threshold_micros": 1_000_000, "pack": "pack-50"}
    await stack.operator.ok("PUT", url, json=rule)
    assert (await stack.operator.ok("GET", url))["enabled"] is True


@scenario("POST", "/v1/payments")
async def manual_payment(stack: Stack) -> None:
    customer_id, _ = await stack.customer(credits_micros=0)
    body = {"customer_id": customer_id, "pack": "pack-10", "idempotency_key": "m"}
    await stack.operator.ok("POST", "/v1/payments", json=body)
    balance = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/balance")
    assert balance["available_micros"] == 10_000_000


@scenario("POST", "/v1/payments/{payment_id}/refund")
async def refund_payment(stack: Stack) -> None:
    customer_id, _ = await stack.customer(credits_micros=0)
    body = {"customer_id": customer_id, "amount_micros": 2_000_000, "idempotency_key": "m"}
    paid = await stack.operator.ok("POST", "/v1/payments", json=body)
    url = f"/v1/payments/{paid['id']}"
    await stack.operator.ok("POST", url + "/refund", json={"idempotency_key": "r"})
    assert (await stack.operator.ok("GET", url))["refunded_micros"] == 2_000_000


def write_routes() -> set[tuple[str, str]]:
    """Every write operation of the OpenAPI document, but the gateway's model calls (chat
    completions stands for them) and Anthropic's token count (a POST that writes nothing)."""
    gateway = {route.path for route in ROUTES} - {"/v1/chat/completions"} | {COUNT_TOKENS_PATH}
    return {
        (method.upper(), path)
        for path, operations in create_app().openapi()["paths"].items()
        if path not in gateway
        for method in operations
        if method.upper() in WRITE_METHODS
    }


def test_every_write_route_has_a_scenario() -> None:
    assert write_routes() == set(SCENARIOS)


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
    """The e2e stack on a SQLite file and on PostgreSQL (Stripe configured, on the local
    Stripe server), its operator's client opening a new connection for every request."""
    url = None if request.param == "sqlite" else await create_postgres_database()
    stripe = {
        "stripe_api_key": API_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": stripe_server.base_url,
        "checkout_success_url": "https://app.example/paid",
    }
    try:
        async with running_stack(tmp_path, upstream, database_url=url, **stripe) as running:
            async with Api(running.base_url, running.operator_key, keep_alive=False) as fresh:
                yield replace(running, operator=fresh)
    finally:
        if url is not None:
            await drop_postgres_database(url)


@pytest.mark.usefixtures("late_commits")
@pytest.mark.parametrize("route", sorted(SCENARIOS), ids=" ".join)
async def test_a_write_is_visible_to_the_next_request(stack: Stack, route: tuple[str, str]) -> None:
    await SCENARIOS[route](stack)
