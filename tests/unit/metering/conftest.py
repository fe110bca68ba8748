"""Fixtures for metering tests: an event factory and recorders stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from tollhouse.clock import FrozenClock
from tollhouse.metering import UsageEvent, UsageEventIn, UsageRecorder
from tollhouse.storage import Database

T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
"""The frozen clock's time; the default `occurred_at`."""

EventFactory = Callable[..., UsageEventIn]
RecorderFactory = Callable[..., UsageRecorder]


@pytest.fixture
def make_event() -> EventFactory:
    """`make_event("evt_1", value=5, meter=..., customer_id=..., ...)` -> UsageEventIn."""

    def make(
        event_id: str,
        *,
        customer_id: str = "cus_a",
        meter: str = "input_tokens",
        value: int = 1,
        occurred_at: datetime = T0,
        key_id: str | None = None,
        model: str | None = None,
        upstream: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> UsageEventIn:
        return UsageEventIn(
            id=event_id,
            customer_id=customer_id,
            meter=meter,
            value=value,
            occurred_at=occurred_at,
            key_id=key_id,
            model=model,
            upstream=upstream,
            properties=properties or {},
        )

    return make


@pytest.fixture
async def recorders(clock: FrozenClock) -> AsyncIterator[RecorderFactory]:
    """`recorders(db, **kwargs)` -> a UsageRecorder on `clock`, stopped at teardown."""
    made: list[UsageRecorder] = []

    def make(db: Database, **kwargs: Any) -> UsageRecorder:
        recorder = UsageRecorder(db, clock=clock, **kwargs)
        made.append(recorder)
        return recorder

    yield make
    for recorder in made:
        await recorder.stop()


StoredEvents = Callable[[Database], Awaitable[list[UsageEvent]]]


@pytest.fixture
def stored() -> StoredEvents:
    """`await stored(db)` -> every stored usage event, by customer then event id."""

    async def read(db: Database) -> list[UsageEvent]:
        async with db.transaction() as session:
            rows = await session.scalars(
                select(UsageEvent).order_by(UsageEvent.customer_id, UsageEvent.event_id)
            )
            return list(rows.all())

    return read
