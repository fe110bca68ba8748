"""Every write route answers after its commit: its effect is visible to the next request.

Story: a client creates a key and deletes it at once; grants credits and reads the balance at
once; and so on for every write route of the control API. To make a late commit show, every
transaction here waits `COMMIT_DELAY_SECONDS` before its COMMIT, and every request goes on a
new connection: a route that answered before its commit would let the next request read the
state before it.

A route added later without a scenario here fails `test_every_write_route_has_a_scenario`.
The gateway's model routes are left out on purpose: their answer comes with a committed hold,
and their settlement (capture, usage) runs after the answer by design (`gateway/settle.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.api.app import create_app
from tollhouse.gateway.call import ROUTES
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


def write_routes() -> set[tuple[str, str]]:
    """Every write operation of the OpenAPI document, but the gateway's model calls."""
    gateway = {route.path for route in ROUTES}
    return {
        (method.upper(), path)
        for path, operations in create_app().openapi()["paths"].items()
        if path not in gateway
        for method in operations
        if method.upper() in WRITE_METHODS
    }


def test_every_write_route_has_a_scenario() -> None:
    assert write_routes() == set(SCENARIOS)


@pytest.fixture(params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream
) -> AsyncIterator[Stack]:
    """The e2e stack on a SQLite file and on PostgreSQL, its operator's client opening a new
    connection for every request."""
    url = None if request.param == "sqlite" else await create_postgres_database()
    try:
        async with running_stack(tmp_path, upstream, database_url=url) as running:
            async with Api(running.base_url, running.operator_key, keep_alive=False) as fresh:
                yield replace(running, operator=fresh)
    finally:
        if url is not None:
            await drop_postgres_database(url)


@pytest.mark.usefixtures("late_commits")
@pytest.mark.parametrize("route", sorted(SCENARIOS), ids=" ".join)
async def test_a_write_is_visible_to_the_next_request(stack: Stack, route: tuple[str, str]) -> None:
    await SCENARIOS[route](stack)
