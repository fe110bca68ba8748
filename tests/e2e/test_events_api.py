"""`GET /v1/events` over the real server, on a SQLite file and on PostgreSQL.

The story: no producer writes events yet, so the test emits them through the service, each
in its own transaction as a producer would: session facts of two customers and one
operator-wide fact. A customer's key reads only its own customer's events (the other's are
invisible, even when it names the other customer); the operator's key reads every event, or
one customer's. Walking the pages with `after=next_cursor` while `has_more` meets every event
once, in the order they were emitted. A malformed cursor is a 422 problem.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.events import service as events

SESSION_FEE_MICROS = 1_000_000
"""The cost a `session.ended` event reports, in micros ($1)."""


@pytest.fixture(params=["sqlite", "postgres"])
async def served(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream
) -> AsyncIterator[Stack]:
    database_url = await create_postgres_database() if request.param == "postgres" else None
    try:
        async with running_stack(tmp_path, upstream, database_url=database_url) as stack:
            yield stack
    finally:
        if database_url is not None:
            await drop_postgres_database(database_url)


async def emit(stack: Stack, customer_id: str | None, type: str, **data: Any) -> str:
    """Emit one event in a transaction of its own; its id."""
    async with stack.runtime.db.transaction() as session:
        event = await events.emit(
            session, customer_id=customer_id, type=type, data=data, clock=stack.runtime.clock
        )
    return event.id


async def story(stack: Stack) -> tuple[str, str, list[str], list[str], str]:
    """Two customers' session facts, interleaved, and one operator-wide event: (first
    customer, its key, its event ids, the other customer's event ids, the wide event's id)."""
    first, first_key = await stack.customer(credits_micros=0)
    second, _ = await stack.customer(credits_micros=0)
    mine: list[str] = []
    theirs: list[str] = []
    for number in range(3):
        mine.append(await emit(stack, first, "session.started", session_id=f"ses_{number}"))
        theirs.append(await emit(stack, second, "session.started", session_id=f"ses_x{number}"))
        mine.append(
            await emit(
                stack,
                first,
                "session.ended",
                session_id=f"ses_{number}",
                reason="duration",
                cost_micros=SESSION_FEE_MICROS,
            )
        )
    wide = await emit(stack, None, "catalog.changed", version="2")
    return first, first_key, mine, theirs, wide


async def walk(api: Api, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every page from the start, `limit` a page: the events in the order read."""
    read: list[dict[str, Any]] = []
    after = None
    while True:
        query = {"limit": limit, **params} | ({"after": after} if after else {})
        page = await api.ok("GET", "/v1/events", params=query)
        read += page["data"]
        if not page["has_more"]:
            return read
        after = page["next_cursor"]
        assert after == page["data"][-1]["id"]


async def test_customer_key_sees_only_its_own_events(served: Stack) -> None:
    first, first_key, mine, theirs, _ = await story(served)
    async with Api(served.base_url, first_key) as customer:
        page = await customer.ok("GET", "/v1/events")
        assert [event["id"] for event in page["data"]] == mine
        assert {event["customer_id"] for event in page["data"]} == {first}
        assert page["has_more"] is False and page["next_cursor"] == mine[-1]
        ended = page["data"][1]
        assert ended["type"] == "session.ended"
        assert ended["data"] == {
            "session_id": "ses_0",
            "reason": "duration",
            "cost_micros": SESSION_FEE_MICROS,
        }
        assert await customer.ok("GET", "/v1/events", params={"customer_id": "me"}) == page
        other = await customer.client.get(
            "/v1/events", params={"customer_id": (await served.customer())[0]}
        )
        assert other.status_code == 404
        after_theirs = await customer.ok("GET", "/v1/events", params={"after": theirs[0]})
        assert [event["id"] for event in after_theirs["data"]] == mine[1:]


async def test_operator_key_sees_every_event_or_one_customers(served: Stack) -> None:
    first, _, mine, theirs, wide = await story(served)
    page = await served.operator.ok("GET", "/v1/events")
    assert [event["id"] for event in page["data"]] == sorted(mine + theirs) + [wide]
    assert page["data"][-1]["customer_id"] is None
    one = await served.operator.ok("GET", "/v1/events", params={"customer_id": first})
    assert [event["id"] for event in one["data"]] == mine
    ended = await served.operator.ok("GET", "/v1/events", params={"type": "session.ended"})
    assert [event["id"] for event in ended["data"]] == mine[1::2]


async def test_pages_walk_every_event_once_in_order(served: Stack) -> None:
    _, first_key, mine, theirs, wide = await story(served)
    everything = sorted(mine + theirs) + [wide]
    for limit in (1, 2, 3, len(everything), 100):
        read = await walk(served.operator, limit)
        assert [event["id"] for event in read] == everything, limit
    async with Api(served.base_url, first_key) as customer:
        assert [event["id"] for event in await walk(customer, 2)] == mine


@pytest.mark.parametrize(
    "params",
    [
        {"after": "not-an-event-id"},
        {"after": "cus_0000000000000000000001"},
        {"limit": 0},
        {"limit": 1001},
        {"type": "Session.Ended"},
    ],
)
async def test_bad_parameters_are_422_problems(served: Stack, params: dict[str, Any]) -> None:
    response = await served.operator.client.get("/v1/events", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/invalid-input")
    assert problem["errors"][0]["loc"].startswith("query.")
