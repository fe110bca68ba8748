"""UsageRecorder: idempotent group-commit writes of usage events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from tollhouse.clock import FrozenClock
from tollhouse.metering import (
    CheckedUsageEvent,
    RecorderClosed,
    RecordResult,
    UnknownMeter,
    UsageEvent,
    UsageEventIn,
    UsageRecorder,
)
from tollhouse.storage import Database

EventFactory = Callable[..., UsageEventIn]
RecorderFactory = Callable[..., UsageRecorder]
StoredEvents = Callable[[Database], Awaitable[list[UsageEvent]]]


class TestRecord:
    async def test_single_event_is_stored_with_every_field(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
        clock: FrozenClock,
    ) -> None:
        occurred = datetime(2026, 3, 15, 13, 30, tzinfo=timezone(timedelta(hours=2)))
        event = make_event(
            "req_1:in",
            value=812,
            occurred_at=occurred,
            key_id="key_1",
            model="gpt-4o",
            upstream="openai",
            properties={"region": "eu", "cached": False},
        )
        clock.advance(5)

        result = await recorders(db).record([event])

        assert result == RecordResult(accepted=1, duplicates=0)
        [row] = await stored(db)
        assert (row.customer_id, row.event_id, row.meter, row.value) == (
            "cus_a",
            "req_1:in",
            "input_tokens",
            812,
        )
        assert row.occurred_at == datetime(2026, 3, 15, 11, 30, tzinfo=UTC)
        assert row.occurred_at.tzinfo is not None
        assert row.recorded_at == clock.now()
        assert (row.key_id, row.model, row.upstream) == ("key_1", "gpt-4o", "openai")
        assert row.properties == {"region": "eu", "cached": False}

    async def test_a_checked_event_is_stored_like_a_validated_one(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        fields: dict[str, Any] = {
            "customer_id": "cus_a",
            "meter": "output_tokens",
            "value": 8,
            "occurred_at": datetime(2026, 3, 15, 11, 30, tzinfo=UTC),
            "key_id": "key_1",
            "model": "gpt-4o",
            "upstream": "azure",
            "properties": {"route": "chat", "cost_micros": 7},
        }
        recorder = recorders(db)

        await recorder.record([UsageEventIn(id="req_1:out", **fields)])
        await recorder.record([CheckedUsageEvent(id="req_2:out", **fields)])
        duplicate = await recorder.record([CheckedUsageEvent(id="req_2:out", **fields)])

        assert duplicate == RecordResult(accepted=0, duplicates=1)
        validated, checked = sorted(await stored(db), key=lambda row: row.event_id)
        columns = ("customer_id", "meter", "value", "occurred_at", "key_id", "model", "upstream")
        assert [getattr(checked, c) for c in columns] == [getattr(validated, c) for c in columns]
        assert checked.properties == validated.properties == {"route": "chat", "cost_micros": 7}

    async def test_properties_round_trip_with_an_integer_beyond_64_bits(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        shared = {"big": 2**70, "ratio": 0.5, "none": None}
        events = [make_event("req_1:a", properties=shared), make_event("req_1:b")]

        await recorders(db).record(events)

        assert [(row.event_id, row.properties, row.key_id) for row in await stored(db)] == [
            ("req_1:a", shared, None),
            ("req_1:b", {}, None),
        ]

    async def test_same_id_twice_in_one_call_counts_once(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        result = await recorders(db).record(
            [make_event("e1", value=3), make_event("e1", value=3), make_event("e2")]
        )

        assert result == RecordResult(accepted=2, duplicates=1)
        assert [(r.event_id, r.value) for r in await stored(db)] == [("e1", 3), ("e2", 1)]

    async def test_same_id_in_a_later_call_is_a_duplicate_and_first_value_wins(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        recorder = recorders(db)
        await recorder.record([make_event("e1", value=10)])

        again = await recorder.record([make_event("e1", value=99), make_event("e2")])

        assert again == RecordResult(accepted=1, duplicates=1)
        assert [(r.event_id, r.value) for r in await stored(db)] == [("e1", 10), ("e2", 1)]

    async def test_same_id_for_two_customers_counts_for_each(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        result = await recorders(db).record(
            [make_event("e1", customer_id="cus_a"), make_event("e1", customer_id="cus_b")]
        )

        assert result == RecordResult(accepted=2, duplicates=0)
        assert len(await stored(db)) == 2

    async def test_empty_call_returns_zero(self, db: Database, recorders: RecorderFactory) -> None:
        recorder = recorders(db)

        assert await recorder.record([]) == RecordResult(accepted=0, duplicates=0)
        assert recorder.stats.batches == 0

    async def test_concurrent_overlapping_calls_store_each_id_once(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        recorder = recorders(db)
        calls = [[make_event(f"e{n}") for n in range(i, i + 10)] for i in range(50)]

        results = await asyncio.gather(*(recorder.record(events) for events in calls))

        unique = 59  # ids e0..e58
        assert sum(r.accepted for r in results) == unique
        assert sum(r.duplicates for r in results) == 500 - unique
        assert all(r.accepted + r.duplicates == 10 for r in results)
        assert sorted(r.event_id for r in await stored(db)) == sorted(f"e{n}" for n in range(59))
        assert recorder.stats.batches < 50  # concurrent callers shared transactions

    async def test_a_duplicate_across_calls_of_one_batch_is_charged_to_the_later_call(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        recorder = recorders(db)

        first, second = await asyncio.gather(
            recorder.record([make_event("e1"), make_event("e2")]),
            recorder.record([make_event("e2"), make_event("e3")]),
        )

        assert recorder.stats.batches == 1
        assert first == RecordResult(accepted=2, duplicates=0)
        assert second == RecordResult(accepted=1, duplicates=1)

    async def test_batches_hold_at_most_max_batch_events_of_whole_calls(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        recorder = recorders(db, max_batch=6)
        calls = [[make_event(f"c{c}e{n}") for n in range(3)] for c in range(4)]

        results = await asyncio.gather(*(recorder.record(events) for events in calls))

        assert recorder.stats.batches == 2
        assert all(r == RecordResult(accepted=3, duplicates=0) for r in results)
        assert len(await stored(db)) == 12

    async def test_a_call_larger_than_max_batch_is_written_whole(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
    ) -> None:
        recorder = recorders(db, max_batch=2)

        result = await recorder.record([make_event(f"e{n}") for n in range(5)])

        assert result == RecordResult(accepted=5, duplicates=0)
        assert recorder.stats.batches == 1

    async def test_a_failing_call_does_not_fail_the_others_in_its_batch(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        recorder = recorders(db)
        # model_construct skips validation: only the database's CHECK (value >= 0) stops it.
        bad = UsageEventIn.model_construct(**{**make_event("bad").model_dump(), "value": -1})

        good1, failed, good2 = await asyncio.gather(
            recorder.record([make_event("g1")]),
            recorder.record([make_event("b0"), bad]),
            recorder.record([make_event("g2")]),
            return_exceptions=True,
        )

        assert isinstance(failed, IntegrityError)
        assert good1 == good2 == RecordResult(accepted=1, duplicates=0)
        assert [r.event_id for r in await stored(db)] == ["g1", "g2"]  # b0 rolled back too
        assert recorder.stats.failed == 2


class TestValidation:
    async def test_unknown_meter_raises_and_writes_nothing(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        recorder = recorders(db, known_meters={"input_tokens", "images"})

        with pytest.raises(UnknownMeter) as caught:
            await recorder.record([make_event("e1"), make_event("e2", meter="gpu_hours")])

        assert (caught.value.status, caught.value.code) == (422, "unknown-meter")
        assert caught.value.extra == {"meter": "gpu_hours"}
        assert await stored(db) == []

    async def test_known_meter_is_accepted(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        recorder = recorders(db, known_meters={"images"})

        result = await recorder.record([make_event("e1", meter="images")])

        assert result.accepted == 1

    async def test_a_non_event_raises_type_error(
        self, db: Database, recorders: RecorderFactory
    ) -> None:
        with pytest.raises(TypeError):
            await recorders(db).record([{"id": "e1"}])  # type: ignore[list-item]


class TestLifecycle:
    async def test_start_is_idempotent_and_refused_after_stop(
        self, db: Database, clock: FrozenClock, make_event: EventFactory
    ) -> None:
        recorder = UsageRecorder(db, clock=clock)
        await recorder.start()
        await recorder.start()

        assert (await recorder.record([make_event("e1")])).accepted == 1
        await recorder.stop()
        with pytest.raises(RecorderClosed):
            await recorder.start()

    async def test_stop_drains_queued_events(
        self,
        db: Database,
        clock: FrozenClock,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        recorder = UsageRecorder(db, clock=clock, max_batch=3)
        callers = [asyncio.create_task(recorder.record([make_event(f"e{n}")])) for n in range(10)]
        while recorder.pending < 10:  # let every caller enqueue
            await asyncio.sleep(0)

        await recorder.stop()

        assert [(await c).accepted for c in callers] == [1] * 10
        assert recorder.stats.accepted == 10
        assert len(await stored(db)) == 10
        assert recorder.pending == 0

    async def test_record_after_stop_raises_recorder_closed(
        self, db: Database, clock: FrozenClock, make_event: EventFactory
    ) -> None:
        recorder = UsageRecorder(db, clock=clock)
        await recorder.stop()

        with pytest.raises(RecorderClosed) as caught:
            await recorder.record([make_event("e1")])
        assert caught.value.status == 503

    async def test_flush_waits_for_everything_queued_so_far(
        self,
        db: Database,
        recorders: RecorderFactory,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        recorder = recorders(db, max_batch=2)
        callers = [  # three batches: one being written while the others queue
            asyncio.create_task(recorder.record([make_event(f"e{n}"), make_event(f"f{n}")]))
            for n in range(5)
        ]
        while recorder.pending + recorder.stats.accepted < 10:  # every caller enqueued
            await asyncio.sleep(0)

        await asyncio.wait_for(recorder.flush(), timeout=10)

        assert all(c.done() for c in callers)
        assert len(await stored(db)) == 10
        assert recorder.pending == 0
        await recorder.flush()  # nothing queued: returns at once

    async def test_a_cancelled_caller_still_gets_its_events_written(
        self,
        db: Database,
        clock: FrozenClock,
        make_event: EventFactory,
        stored: StoredEvents,
    ) -> None:
        recorder = UsageRecorder(db, clock=clock)
        caller = asyncio.create_task(recorder.record([make_event("e1")]))
        while recorder.pending == 0:  # let the caller enqueue
            await asyncio.sleep(0)

        caller.cancel()
        await recorder.stop()

        assert caller.cancelled()
        assert [r.event_id for r in await stored(db)] == ["e1"]


class TestWatch:
    """`watch`: listeners hear how many events ended how (the metrics' source)."""

    async def test_written_duplicate_and_failed_are_told(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        recorder = recorders(db)
        heard: list[tuple[str, int]] = []
        recorder.watch(lambda outcome, events: heard.append((outcome, events)))
        bad = UsageEventIn.model_construct(**{**make_event("bad").model_dump(), "value": -1})

        await recorder.record([make_event("e1"), make_event("e2")])
        await recorder.record([make_event("e2"), make_event("e3")])
        with pytest.raises(IntegrityError):
            await recorder.record([make_event("e4"), bad])

        assert heard == [("written", 2), ("written", 1), ("duplicate", 1), ("failed", 2)]
