"""metering.service.check_invariants and the load tests' helpers, on PostgreSQL: a usage
event id stored twice is reported (the unique constraint is dropped to let it in), and
`assert_counted_once` tells acknowledged ids from stored ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from tests.support.ledger_check import assert_consistent, assert_counted_once, problems

from tollhouse.clock import FrozenClock
from tollhouse.metering import UsageEventIn, UsageRecorder
from tollhouse.storage import Database

AT = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


async def _record(db: Database, *event_ids: str) -> None:
    recorder = UsageRecorder(db, clock=FrozenClock(AT), known_meters={"api_calls"})
    try:
        await recorder.record(
            [
                UsageEventIn(
                    id=event_id, customer_id="cus_a", meter="api_calls", value=1, occurred_at=AT
                )
                for event_id in event_ids
            ]
        )
    finally:
        await recorder.stop()


class TestUsageInvariants:
    async def test_recorded_events_are_consistent_and_counted_once(
        self, postgres_db: Database
    ) -> None:
        await _record(postgres_db, "e1", "e2", "e1")

        await assert_consistent(postgres_db.url)
        await assert_counted_once(postgres_db.url, "cus_a", ["e1", "e2"])
        with pytest.raises(AssertionError, match="acknowledged ids not stored"):
            await assert_counted_once(postgres_db.url, "cus_a", ["e1", "e2", "e3"])
        with pytest.raises(AssertionError, match="stored ids never acknowledged"):
            await assert_counted_once(postgres_db.url, "cus_a", ["e1"])

    async def test_an_event_id_stored_twice_is_reported(self, postgres_db: Database) -> None:
        await _record(postgres_db, "e1")
        async with postgres_db.transaction() as session:
            name = await session.scalar(
                text(
                    "SELECT conname FROM pg_constraint WHERE contype = 'u' "
                    "AND conrelid = 'usage_events'::regclass"
                )
            )
            await session.execute(text(f'ALTER TABLE usage_events DROP CONSTRAINT "{name}"'))
            await session.execute(
                text(
                    "INSERT INTO usage_events (event_id, customer_id, meter, value, occurred_at, "
                    "recorded_at, properties) SELECT event_id, customer_id, meter, value, "
                    "occurred_at, recorded_at, properties FROM usage_events"
                )
            )

        assert await problems(postgres_db.url) == [
            "usage event e1 of cus_a: stored 2 times (counts once)"
        ]
        with pytest.raises(AssertionError, match="stored more than once"):
            await assert_counted_once(postgres_db.url, "cus_a", ["e1"])
