"""A usage write that the database fails is answered 503, and acknowledges nothing.

Story: a sidecar reports a batch of usage events while PostgreSQL refuses the insert (here a
trigger the test installs raises for an event whose id starts with `poison`: a real database
error, as a failing disk or a lock timeout would give). tollhouse answers 503
`metering-unavailable` with `Retry-After`, never a 500 and never a 2xx: nothing of the batch
is stored. Once the database accepts writes again, the same batch is recorded whole, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.upstream import FakeUpstream

from tollhouse.metering import UsageEvent

REFUSE_POISON = [
    """
    CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM inserted WHERE event_id LIKE 'poison%') THEN
            RAISE EXCEPTION 'the disk is on fire';
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER refuse_poison AFTER INSERT ON usage_events REFERENCING NEW TABLE AS "
    "inserted FOR EACH STATEMENT EXECUTE FUNCTION refuse_poison()",
]


@pytest.fixture
async def pg_stack(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Stack]:
    url = await create_postgres_database()
    try:
        async with running_stack(tmp_path, upstream, database_url=url) as running:
            yield running
    finally:
        await drop_postgres_database(url)


async def stored_count(stack: Stack) -> int:
    async with stack.runtime.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(UsageEvent)) or 0)


async def test_a_failed_usage_write_is_503_with_retry_after_and_stores_nothing(
    pg_stack: Stack,
) -> None:
    customer_id, _ = await pg_stack.customer()
    batch = {
        "events": [
            {"id": event_id, "customer_id": customer_id, "meter": "api_calls", "value": 1}
            for event_id in ("fine-1", "poison-1", "fine-2")
        ]
    }
    async with pg_stack.runtime.db.transaction() as session:
        for statement in REFUSE_POISON:
            await session.execute(text(statement))

    refused = await pg_stack.operator.client.post("/v1/usage/events", json=batch)

    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["Retry-After"] == "1"
    problem = refused.json()
    assert problem["type"] == "https://tollhouse.dev/problems/metering-unavailable"
    assert problem["retry_after_seconds"] == 1
    assert "fire" not in refused.text  # the database's message stays in the log
    assert await stored_count(pg_stack) == 0

    async with pg_stack.runtime.db.transaction() as session:
        await session.execute(text("DROP TRIGGER refuse_poison ON usage_events"))
    retried = await pg_stack.operator.ok("POST", "/v1/usage/events", json=batch)
    again = await pg_stack.operator.ok("POST", "/v1/usage/events", json=batch)

    assert (retried["accepted"], retried["duplicates"]) == (3, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    assert await stored_count(pg_stack) == 3


async def test_the_same_id_twice_in_one_batch_counts_once_or_conflicts(pg_stack: Stack) -> None:
    """Within one batch, a repeated id with the same fields is a duplicate of the first;
    with another value the whole batch is 422 `idempotency-key-reused` and nothing is
    stored."""
    customer_id, _ = await pg_stack.customer()

    def event(event_id: str, value: int) -> dict[str, object]:
        return {"id": event_id, "customer_id": customer_id, "meter": "images", "value": value}

    same = await pg_stack.operator.ok(
        "POST", "/v1/usage/events", json={"events": [event("a", 2), event("b", 1), event("a", 2)]}
    )
    conflict = await pg_stack.operator.client.post(
        "/v1/usage/events", json={"events": [event("c", 2), event("c", 3)]}
    )

    assert (same["accepted"], same["duplicates"]) == (2, 1)
    assert conflict.status_code == 422, conflict.text
    assert conflict.json()["type"].endswith("/idempotency-key-reused")
    assert conflict.json()["events"] == [{"id": "c", "fields": ["value"]}]
    assert await stored_count(pg_stack) == 2
