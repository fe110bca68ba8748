"""Metered (compute) sessions over HTTP, on SQLite and PostgreSQL, with the server's clock
frozen; the server's extender and reaper pass (`Runtime.meter_sessions`) is run explicitly.

Story: a pro customer asks what half an hour on `large` would cost, starts a session on
`small` (the minimum run is held), sends heartbeats while the server extends its paid time
slice by slice, reads its cost as it runs, and stops it: the bill is the exact run, and the
wallet's transactions show the captures adding up to it. A free customer asking for `large`
is told which plan has it. A wallet that runs dry stops its session by itself. Nobody sees,
heartbeats or stops another customer's session; operators act on anyone's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.catalog import LARGE_MICROS_PER_HOUR, SMALL_MICROS_PER_HOUR
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.clock import FrozenClock

WALLET_MICROS = 10_000_000
START_HOLD_MICROS = 900 * SMALL_MICROS_PER_HOUR // 3600
"""The test catalog's default minimum run, 15 min on small: 18,750 micros."""
SLICE_MICROS = 300 * SMALL_MICROS_PER_HOUR // 3600
"""One 5-min slice on small: 6,250 micros."""
TICK_SECONDS = 60


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


async def run(stack: Stack, clock: FrozenClock, seconds: int) -> None:
    """Let `seconds` pass, the server's metered pass running every minute."""
    for _ in range(seconds // TICK_SECONDS):
        clock.advance(TICK_SECONDS)
        await stack.runtime.meter_sessions()


def problem_type(response: Any) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


async def test_a_metered_session_is_billed_for_its_exact_run(
    stack: Stack, clock: FrozenClock
) -> None:
    customer, key = await stack.customer(plan="pro", credits_micros=WALLET_MICROS)
    before = await stack.available(customer)  # the credits and the plan's included ones
    async with Api(stack.base_url, key) as own:
        quote = await own.ok(
            "POST", "/v1/sessions/estimate",
            json={"resource_tier": "large", "duration_seconds": 1800},
        )  # fmt: skip
        start = {"resource_tier": "small", "idempotency_key": "c-1"}
        started = await own.client.post("/v1/sessions", json=start)
        replayed = await own.client.post("/v1/sessions", json=start)
        session = started.json()
        assert (started.status_code, replayed.status_code) == (201, 200)
        assert replayed.json()["id"] == session["id"]
        await run(stack, clock, 600)
        beat = await own.ok("POST", f"/v1/sessions/{session['id']}/heartbeat")
        await run(stack, clock, 1200)
        running = await own.ok("GET", f"/v1/sessions/{session['id']}")
        clock.advance(30.25)
        stopped = await own.ok("POST", f"/v1/sessions/{session['id']}/terminate")
        history = await own.ok("GET", f"/v1/customers/{customer}/transactions")
        events = await own.ok("GET", "/v1/events")
    assert (quote["plan"], quote["rate_micros_per_hour"]) == ("pro", LARGE_MICROS_PER_HOUR)
    assert (quote["cost_micros"], quote["start_hold_micros"]) == (300_000, 150_000)
    assert (session["kind"], session["resource_tier"], session["product"]) == (
        "metered",
        "small",
        "compute:small",
    )
    assert (session["cost_micros"], session["rate_micros_per_hour"]) == (0, SMALL_MICROS_PER_HOUR)
    assert beat["last_heartbeat_at"] == "2026-03-15T12:10:00Z"
    assert (running["status"], running["cost_micros"]) == ("active", 37_500)  # 0.5 h
    assert running["paid_until"] == "2026-03-15T12:35:00Z"
    billed = 38_146  # 1,830.25 s is billed as 1,831 s; at 75,000/h: 38,145.8, up
    assert (stopped["status"], stopped["end_reason"], stopped["billed_micros"]) == (
        "ended",
        "terminated",
        billed,
    )
    assert stopped["settled_at"] is not None and stopped["cost_micros"] == billed
    captured = [e for e in history if e["kind"] == "capture"]
    assert -sum(e["amount_micros"] for e in captured) == billed
    facts = [
        (e["type"], e["data"].get("reason"), e["data"].get("cost_micros")) for e in events["data"]
    ]
    assert facts == [("session.started", None, None), ("session.ended", "terminated", billed)]
    assert await stack.available(customer) == before - billed


async def test_a_tier_outside_the_plan_names_the_plan_that_has_it(stack: Stack) -> None:
    _, key = await stack.customer(plan="free", credits_micros=WALLET_MICROS)
    async with Api(stack.base_url, key) as own:
        refused = await own.client.post(
            "/v1/sessions", json={"resource_tier": "large", "idempotency_key": "x"}
        )
        quote = await own.client.post(
            "/v1/sessions/estimate", json={"resource_tier": "large", "duration_seconds": 60}
        )
        both = await own.client.post(
            "/v1/sessions",
            json={"resource_tier": "small", "product": "imaging", "idempotency_key": "y"},
        )
        neither = await own.client.post("/v1/sessions", json={"idempotency_key": "z"})
        unknown = await own.client.post(
            "/v1/sessions", json={"resource_tier": "huge", "idempotency_key": "w"}
        )
        listed = await own.ok("GET", "/v1/sessions")
    assert (refused.status_code, problem_type(refused)) == (403, "resource-tier-not-in-plan")
    assert (refused.json()["required_plan"], refused.json()["tier"]) == ("pro", "large")
    assert (quote.status_code, quote.json()["required_plan"]) == (403, "pro")
    assert [r.status_code for r in (both, neither, unknown)] == [422, 422, 422]
    assert listed == []


async def test_a_session_whose_wallet_runs_dry_stops_by_itself(
    stack: Stack, clock: FrozenClock
) -> None:
    wallet = START_HOLD_MICROS + 2 * SLICE_MICROS
    customer, key = await stack.customer(plan="free", credits_micros=wallet)
    async with Api(stack.base_url, key) as own:
        session = await own.ok(
            "POST", "/v1/sessions", json={"resource_tier": "small", "idempotency_key": "c"}
        )
        await run(stack, clock, 1260)
        ended = await own.ok("GET", f"/v1/sessions/{session['id']}")
        late = await own.client.post(f"/v1/sessions/{session['id']}/heartbeat")
        events = await own.ok("GET", "/v1/events")
    assert (ended["status"], ended["end_reason"], ended["billed_micros"]) == (
        "ended",
        "credit",
        26_250,  # 1,260 s at 75,000/h
    )
    assert (late.status_code, problem_type(late), late.json()["reason"]) == (
        402,
        "session-ended",
        "credit",
    )
    assert [e["type"] for e in events["data"]] == [
        "session.started",
        "session.low_credit",
        "session.ended",
    ]
    assert await stack.available(customer) == wallet - 26_250


async def test_customers_see_only_their_own_and_operators_act_on_any(
    stack: Stack, clock: FrozenClock
) -> None:
    owner, owner_key = await stack.customer(plan="pro", credits_micros=WALLET_MICROS)
    before = await stack.available(owner)
    _, other_key = await stack.customer(plan="pro", credits_micros=WALLET_MICROS)
    session = await stack.operator.ok(
        "POST",
        "/v1/sessions",
        json={"resource_tier": "large", "idempotency_key": "op", "customer_id": owner},
    )
    async with Api(stack.base_url, other_key) as other:
        seen = await other.client.get(f"/v1/sessions/{session['id']}")
        beat = await other.client.post(f"/v1/sessions/{session['id']}/heartbeat")
        stopped = await other.client.post(f"/v1/sessions/{session['id']}/terminate")
        listed = await other.ok("GET", "/v1/sessions")
    assert [r.status_code for r in (seen, beat, stopped)] == [404, 404, 404]
    assert listed == []
    async with Api(stack.base_url, owner_key) as own:
        mine = await own.ok("GET", "/v1/sessions/current")
    assert [s["id"] for s in mine] == [session["id"]]
    clock.advance(120)
    everyone = await stack.operator.ok("GET", "/v1/sessions?status=active")
    assert [s["id"] for s in everyone] == [session["id"]]
    ended = await stack.operator.ok("POST", f"/v1/sessions/{session['id']}/terminate")
    assert (ended["end_reason"], ended["billed_micros"]) == ("terminated", 20_000)  # 2 min
    assert await stack.available(owner) == before - 20_000
