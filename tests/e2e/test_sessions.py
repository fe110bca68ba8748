"""Flat sessions over HTTP, on SQLite and PostgreSQL, with the server's clock frozen.

Story: a customer buys a pack of sessions and starts one (the pack pays, the wallet does
not); a product without a pack is paid from the wallet and the fee shows in its transaction
history; replays answer the same session or pack without charging again; one session per
product at a time; the duration cap ends a session; nobody sees or ends another customer's
session; operators act on any customer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.catalog import SESSION_PACK_5_MICROS, SESSION_PRICE_MICROS
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.clock import FrozenClock

WALLET_MICROS = 10_000_000
IMAGING_MICROS = 500_000
"""The test catalog's `imaging` product: $0.50 for an hour, no packs."""
PROBLEM = "application/problem+json"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))


@pytest.fixture(params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream, clock: FrozenClock
) -> AsyncIterator[Stack]:
    url = None if request.param == "sqlite" else await create_postgres_database()
    try:
        async with running_stack(tmp_path, upstream, database_url=url, clock=clock) as running:
            yield running
    finally:
        if url is not None:
            await drop_postgres_database(url)


async def test_a_pack_pays_before_the_wallet_and_replays_charge_nothing(stack: Stack) -> None:
    customer, key = await stack.customer(credits_micros=WALLET_MICROS)
    async with Api(stack.base_url, key) as own:
        buy = {"product": "analysis", "sessions": 5, "idempotency_key": "pack-1"}
        bought = await own.client.post("/v1/sessions/quota/add", json=buy)
        replayed = await own.client.post("/v1/sessions/quota/add", json=buy)
        assert (bought.status_code, replayed.status_code) == (201, 200)
        assert replayed.json()["id"] == bought.json()["id"]
        assert bought.json()["price_micros"] == SESSION_PACK_5_MICROS

        start = {"product": "analysis", "idempotency_key": "s-1"}
        started = await own.client.post("/v1/sessions", json=start)
        again = await own.client.post("/v1/sessions", json=start)
        assert (started.status_code, again.status_code) == (201, 200)
        session = started.json()
        assert again.json()["id"] == session["id"]
        assert (session["paid_with"], session["pack_id"]) == ("pack", bought.json()["id"])
        assert (session["tokens_left"], session["seconds_left"]) == (100_000, 86_400)
        quota = await own.ok("GET", "/v1/sessions/quota")
        assert {q["product"]: q["sessions_left"] for q in quota["products"]} == {
            "analysis": 4,
            "imaging": 0,
            "analyst": 0,
        }
        current = await own.ok("GET", "/v1/sessions/current")
        assert [s["id"] for s in current] == [session["id"]]
    assert await stack.available(customer) == WALLET_MICROS - SESSION_PACK_5_MICROS


async def test_the_wallet_pays_and_the_transactions_show_the_fee(stack: Stack) -> None:
    customer, key = await stack.customer(credits_micros=WALLET_MICROS)
    async with Api(stack.base_url, key) as own:
        session = await own.ok(
            "POST", "/v1/sessions", json={"product": "analysis", "idempotency_key": "s-1"}
        )
        assert (session["paid_with"], session["fee_micros"]) == ("wallet", SESSION_PRICE_MICROS)
        history = await own.ok("GET", f"/v1/customers/{customer}/transactions")
        hold = await own.ok("GET", f"/v1/holds/{session['hold_id']}")
        reused = await own.client.post(
            "/v1/sessions", json={"product": "imaging", "idempotency_key": "s-1"}
        )
        busy = await own.client.post(
            "/v1/sessions", json={"product": "analysis", "idempotency_key": "s-2"}
        )
    captured = [e for e in history if e["hold_id"] == session["hold_id"] and e["kind"] == "capture"]
    assert sum(e["amount_micros"] for e in captured) == -SESSION_PRICE_MICROS
    assert {
        (e["hold_metadata"]["purpose"], e["hold_metadata"]["session_id"]) for e in captured
    } == {("session_fee", session["id"])}
    assert (hold["status"], hold["captured_micros"]) == ("captured", SESSION_PRICE_MICROS)
    assert (reused.status_code, reused.json()["type"].rsplit("/", 1)[-1]) == (
        422,
        "idempotency-key-reused",
    )
    assert busy.status_code == 409 and busy.headers["content-type"].startswith(PROBLEM)
    assert busy.json()["session_id"] == session["id"]
    assert await stack.available(customer) == WALLET_MICROS - SESSION_PRICE_MICROS


async def test_the_duration_cap_and_terminate_end_sessions(
    stack: Stack, clock: FrozenClock
) -> None:
    _, key = await stack.customer(credits_micros=WALLET_MICROS)
    async with Api(stack.base_url, key) as own:
        imaging = await own.ok(
            "POST", "/v1/sessions", json={"product": "imaging", "idempotency_key": "i"}
        )
        analysis = await own.ok(
            "POST", "/v1/sessions", json={"product": "analysis", "idempotency_key": "a"}
        )
        clock.advance(3600)
        ended = await own.ok("GET", f"/v1/sessions/{imaging['id']}")
        terminated = await own.ok("POST", f"/v1/sessions/{analysis['id']}/terminate")
        listed = await own.ok("GET", "/v1/sessions")
        events = await own.ok("GET", "/v1/events")
    assert (ended["status"], ended["end_reason"], ended["seconds_left"]) == ("ended", "duration", 0)
    assert ended["ended_at"] == imaging["expires_at"]
    assert (terminated["status"], terminated["end_reason"]) == ("ended", "terminated")
    assert {s["id"]: s["status"] for s in listed} == {
        imaging["id"]: "ended",
        analysis["id"]: "ended",
    }
    facts = [(e["type"], e["data"]["session_id"], e["data"].get("reason")) for e in events["data"]]
    assert facts == [
        ("session.started", imaging["id"], None),
        ("session.started", analysis["id"], None),
        ("session.ended", imaging["id"], "duration"),
        ("session.ended", analysis["id"], "terminated"),
    ]


async def test_customers_see_only_their_own_and_operators_act_on_any(stack: Stack) -> None:
    owner, owner_key = await stack.customer(credits_micros=WALLET_MICROS)
    _, other_key = await stack.customer(credits_micros=WALLET_MICROS)
    session = await stack.operator.ok(
        "POST",
        "/v1/sessions",
        json={"product": "imaging", "idempotency_key": "op-1", "customer_id": owner},
    )
    async with Api(stack.base_url, other_key) as other:
        seen = await other.client.get(f"/v1/sessions/{session['id']}")
        stopped = await other.client.post(f"/v1/sessions/{session['id']}/terminate")
        listed = await other.ok("GET", "/v1/sessions")
        named = await other.client.post(
            "/v1/sessions",
            json={"product": "imaging", "idempotency_key": "x", "customer_id": owner},
        )
    assert (seen.status_code, stopped.status_code, named.status_code) == (404, 404, 404)
    assert listed == []
    async with Api(stack.base_url, owner_key) as own:
        mine = await own.ok("GET", f"/v1/sessions/{session['id']}")
    assert (mine["customer_id"], mine["status"]) == (owner, "active")
    unnamed = await stack.operator.client.post(
        "/v1/sessions", json={"product": "imaging", "idempotency_key": "op-2"}
    )
    assert unnamed.status_code == 422
    everyone = await stack.operator.ok("GET", "/v1/sessions")
    assert [s["id"] for s in everyone] == [session["id"]]
    ended = await stack.operator.ok("POST", f"/v1/sessions/{session['id']}/terminate")
    assert ended["end_reason"] == "terminated"


async def test_a_wallet_that_cannot_pay_answers_402_and_starts_nothing(stack: Stack) -> None:
    customer, key = await stack.customer(credits_micros=IMAGING_MICROS - 1)
    async with Api(stack.base_url, key) as own:
        refused = await own.client.post(
            "/v1/sessions", json={"product": "imaging", "idempotency_key": "s"}
        )
        pack = await own.client.post(
            "/v1/sessions/quota/add",
            json={"product": "analysis", "sessions": 5, "idempotency_key": "p"},
        )
        unknown = await own.client.post(
            "/v1/sessions", json={"product": "nope", "idempotency_key": "t"}
        )
        listed = await own.ok("GET", "/v1/sessions")
    assert (refused.status_code, pack.status_code, unknown.status_code) == (402, 402, 404)
    assert refused.json()["type"].endswith("insufficient-credit")
    assert unknown.json()["type"].endswith("session-product-not-found")
    assert listed == []
    assert await stack.available(customer) == IMAGING_MICROS - 1
