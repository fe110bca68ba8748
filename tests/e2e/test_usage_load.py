"""100,000 usage events through four `tollhouse serve` processes while 1% of the database's
writes fail: every event is counted exactly once.

Story: an operator runs four processes on one PostgreSQL database and one Redis; a fleet of
sidecars reports usage through `POST /v1/usage/events` in batches. A fifth of the events are
sent again (up to five more times: a sidecar that retried, or reported twice), everything is
shuffled, so some batches carry the same id twice and the copies of an event land on different
processes. PostgreSQL itself refuses about 1% of the inserts into `usage_events` (a trigger the
test installs raises on every 100th insert): real database errors, which tollhouse answers with
503 `metering-unavailable` and `Retry-After`, acknowledging nothing of the batch. Each client
retries its batch, same ids, until it is acknowledged.

Afterwards: the stored events are exactly the distinct ids sent, the batches' `accepted`
counts add up to that number (each id was acknowledged as new once), and each customer's
per-meter aggregates (count, sum, max) are exact. No answer was a 500.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from tests.e2e.test_multiprocess import cluster
from tests.support.upstream import FakeUpstream

from tollhouse.storage import Database

pytestmark = pytest.mark.load

SEED = 23
DISTINCT_EVENTS = 100_000
REPEATED_SHARE = 5
"""One event in REPEATED_SHARE is sent again, 1 to MAX_EXTRA_COPIES more times."""
MAX_EXTRA_COPIES = 5
BATCH_SIZE = 250
CLIENTS = 16
CUSTOMERS = 8
PROCESSES = 4
FAILURE_PERCENT = 1
METERS = {
    "api_calls": "count",
    "input_tokens": "sum",
    "output_tokens": "sum",
    "images": "sum",
    "storage_bytes": "max",
}
RETRY_BOUND = 50
"""Most tries of one batch before the test gives up on it (each fails with ~1% chance)."""

FAIL_SOME_WRITES = [
    "CREATE SEQUENCE usage_write_attempts",
    "CREATE SEQUENCE injected_usage_failures",
    f"""
    CREATE FUNCTION fail_some_usage_writes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF nextval('usage_write_attempts') % {100 // FAILURE_PERCENT} = 0 THEN
            PERFORM nextval('injected_usage_failures');  -- sequences survive the rollback
            RAISE EXCEPTION 'injected failure of a usage write';
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER fail_some_usage_writes BEFORE INSERT ON usage_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION fail_some_usage_writes()",
]
"""A statement-level trigger: FAILURE_PERCENT % of the INSERTs into `usage_events` (every
100th, so that the run is certain to meet failures) fail with a real PostgreSQL error
(SQLSTATE P0001), after which nothing of them is stored."""


@dataclass(frozen=True)
class Event:
    id: str
    customer_id: str
    meter: str
    value: int
    occurred_at: str

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "meter": self.meter,
            "value": self.value,
            "occurred_at": self.occurred_at,
        }


@dataclass
class Outcome:
    """What the clients saw."""

    accepted: int = 0
    duplicates: int = 0
    acknowledged: set[tuple[str, str]] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    refusals: list[httpx.Response] = field(default_factory=list)
    """Every non-2xx answer (all retried)."""


def make_events(rng: random.Random, customers: list[str]) -> tuple[list[Event], list[Event]]:
    """(the distinct events, everything to send: each once, a fifth of them again, shuffled)."""
    now = datetime.now(UTC)
    distinct = [
        Event(
            id=f"evt-{n}",
            customer_id=rng.choice(customers),
            meter=rng.choice(list(METERS)),
            value=rng.randint(1, 10_000),
            occurred_at=(now - timedelta(seconds=rng.randint(60, 86_400))).isoformat(),
        )
        for n in range(DISTINCT_EVENTS)
    ]
    sent = list(distinct)
    for event in distinct:
        if rng.randrange(REPEATED_SHARE) == 0:
            sent.extend([event] * rng.randint(1, MAX_EXTRA_COPIES))
    rng.shuffle(sent)
    return distinct, sent


def batches(events: list[Event]) -> Iterator[list[Event]]:
    for start in range(0, len(events), BATCH_SIZE):
        yield events[start : start + BATCH_SIZE]


async def send_all(urls: list[str], key: str, batches_: list[list[Event]]) -> Outcome:
    """CLIENTS concurrent clients; batch n goes to process n mod PROCESSES, a retry to the
    next one, after `Retry-After` seconds."""
    outcome = Outcome()
    queue: asyncio.Queue[tuple[int, list[Event]]] = asyncio.Queue()
    for item in enumerate(batches_):
        queue.put_nowait(item)
    headers = {"Authorization": f"Bearer {key}"}

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            number, batch = queue.get_nowait()
            body = {"events": [event.body() for event in batch]}
            for attempt in range(RETRY_BOUND):
                url = urls[(number + attempt) % len(urls)]
                response = await http.post(f"{url}/v1/usage/events", json=body)
                outcome.statuses[response.status_code] += 1
                if response.is_success:
                    answer = response.json()
                    outcome.accepted += answer["accepted"]
                    outcome.duplicates += answer["duplicates"]
                    outcome.acknowledged.update((e.customer_id, e.id) for e in batch)
                    break
                outcome.refusals.append(response)
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            else:
                raise AssertionError(f"batch {number} not acknowledged in {RETRY_BOUND} tries")

    async with httpx.AsyncClient(timeout=120, headers=headers) as http:
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
    return outcome


async def test_usage_events_count_once_across_processes_with_failing_writes(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    rng = random.Random(SEED)
    async with cluster(tmp_path, upstream, redis_url, processes=PROCESSES) as c:
        customers = [
            (await c.operator.ok("POST", "/v1/customers", json={"name": f"c{n}"}))["id"]
            for n in range(CUSTOMERS)
        ]
        distinct, sent = make_events(rng, customers)
        db = Database(c.database_url)
        try:
            async with db.transaction() as session:
                for statement in FAIL_SOME_WRITES:
                    await session.execute(text(statement))

            outcome = await send_all(
                [server.base_url for server in c.servers], c.operator_key, list(batches(sent))
            )

            async with db.transaction() as session:
                stored = Counter(
                    (row.customer_id, row.event_id)
                    for row in await session.execute(
                        text("SELECT customer_id, event_id FROM usage_events")
                    )
                )
                attempts, injected = (
                    await session.execute(
                        text(
                            "SELECT (SELECT last_value FROM usage_write_attempts), "
                            "(SELECT last_value FROM injected_usage_failures)"
                        )
                    )
                ).one()
        finally:
            await db.dispose()

        aggregates: dict[tuple[str, str], int] = {}
        for customer_id in customers:
            usage = await c.operator.ok(
                "GET",
                "/v1/usage",
                params={"customer_id": customer_id, "meter": list(METERS)},
            )
            for bucket in usage["buckets"]:
                aggregates[(customer_id, bucket["meter"])] = bucket["value"]

    print(
        f"sent {len(sent)} events ({len(distinct)} distinct) in {sum(outcome.statuses.values())}"
        f" requests {dict(outcome.statuses)}; {attempts} usage INSERTs, {injected} failed"
    )
    # the failures were real and answered as retryable: 503 problem+json with Retry-After
    assert injected > 0
    assert outcome.refusals, "no write failure reached a client"
    for response in outcome.refusals:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/metering-unavailable")
        assert int(response.headers["Retry-After"]) >= 1

    ids = {(event.customer_id, event.id) for event in distinct}
    assert outcome.acknowledged == ids
    assert set(stored) == ids  # every acknowledged id is stored ...
    assert set(stored.values()) == {1}  # ... exactly once
    assert outcome.accepted == len(ids)  # each acknowledged as new exactly once
    assert outcome.accepted + outcome.duplicates == len(sent)

    expected: dict[tuple[str, str], int] = {}
    for event in distinct:
        key = (event.customer_id, event.meter)
        if METERS[event.meter] == "count":
            expected[key] = expected.get(key, 0) + 1
        elif METERS[event.meter] == "sum":
            expected[key] = expected.get(key, 0) + event.value
        else:
            expected[key] = max(expected.get(key, 0), event.value)
    assert aggregates == expected
