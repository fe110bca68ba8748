"""Usage queries on SQLite and PostgreSQL: aggregations, UTC windows, groups, isolation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tollhouse.metering import (
    Aggregation,
    InvalidUsageQuery,
    InvalidUsageWindow,
    UsageBucket,
    UsageEventIn,
    UsageRecorder,
    query_usage,
    service,
    totals,
    usage_by_key,
)
from tollhouse.storage import Database

EventFactory = Callable[..., UsageEventIn]
RecorderFactory = Callable[..., UsageRecorder]

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)
TOKENS: dict[str, Aggregation] = {"input_tokens": "sum"}


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    """A UTC datetime."""
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


async def seed(db: Database, recorders: RecorderFactory, events: list[UsageEventIn]) -> None:
    result = await recorders(db).record(events)
    assert result.accepted == len(events)


class TestAggregations:
    async def test_sum_count_and_max_per_meter(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("t1", meter="input_tokens", value=100),
                make_event("t2", meter="input_tokens", value=250),
                make_event("c1", meter="api_calls", value=1),
                make_event("c2", meter="api_calls", value=1),
                make_event("c3", meter="api_calls", value=1),
                make_event("s1", meter="storage_bytes", value=5_000),
                make_event("s2", meter="storage_bytes", value=7_000),
                make_event("s3", meter="storage_bytes", value=6_000),
            ],
        )
        meters: dict[str, Aggregation] = {
            "input_tokens": "sum",
            "api_calls": "count",
            "storage_bytes": "max",
        }

        async with db.transaction() as session:
            buckets = await query_usage(
                session, customer_id="cus_a", meters=meters, start=START, end=END
            )

        assert buckets == [
            UsageBucket("input_tokens", None, None, 350),
            UsageBucket("api_calls", None, None, 3),
            UsageBucket("storage_bytes", None, None, 7_000),
        ]

    async def test_large_sums_are_exact_ints(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(db, recorders, [make_event(f"e{n}", value=2**61) for n in range(3)])

        async with db.transaction() as session:
            result = await totals(session, customer_id="cus_a", meters=TOKENS, start=START, end=END)

        assert result == {"input_tokens": 3 * 2**61}
        assert type(result["input_tokens"]) is int

    async def test_meters_without_events_total_zero(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(db, recorders, [make_event("e1", value=5)])

        async with db.transaction() as session:
            result = await totals(
                session,
                customer_id="cus_a",
                meters={"images": "sum", "input_tokens": "sum", "api_calls": "count"},
                start=START,
                end=END,
            )

        assert result == {"images": 0, "input_tokens": 5, "api_calls": 0}

    async def test_start_is_inclusive_and_end_exclusive(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        start, end = at(2026, 3, 1), at(2026, 4, 1)
        await seed(
            db,
            recorders,
            [
                make_event("before", value=1, occurred_at=start - timedelta(microseconds=1)),
                make_event("first", value=10, occurred_at=start),
                make_event("last", value=100, occurred_at=end - timedelta(microseconds=1)),
                make_event("after", value=1000, occurred_at=end),
            ],
        )

        async with db.transaction() as session:
            result = await totals(session, customer_id="cus_a", meters=TOKENS, start=start, end=end)

        assert result == {"input_tokens": 110}

    async def test_empty_meters_give_no_buckets(self, db: Database) -> None:
        async with db.transaction() as session:
            assert (
                await query_usage(session, customer_id="cus_a", meters={}, start=START, end=END)
                == []
            )


class TestWindows:
    async def test_hour_windows_cut_on_utc_boundaries(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("a", value=1, occurred_at=at(2026, 3, 15, 12, 0, 0)),
                make_event("b", value=2, occurred_at=at(2026, 3, 15, 12, 59, 59, 999_999)),
                make_event("c", value=4, occurred_at=at(2026, 3, 15, 13, 0, 0)),
                make_event("d", value=8, occurred_at=at(2026, 3, 15, 15, 30)),
            ],
        )

        async with db.transaction() as session:
            buckets = await query_usage(
                session, customer_id="cus_a", meters=TOKENS, start=START, end=END, window="hour"
            )

        assert [(b.window_start, b.value) for b in buckets] == [
            (at(2026, 3, 15, 12), 3),
            (at(2026, 3, 15, 13), 4),
            (at(2026, 3, 15, 15), 8),  # empty 14:00 is left out
        ]
        assert all(b.window_start and b.window_start.tzinfo is not None for b in buckets)
        assert all(b.window_start and b.window_start.utcoffset() == timedelta(0) for b in buckets)

    async def test_day_windows_follow_utc_not_the_event_offset(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        tokyo = timezone(timedelta(hours=9))
        await seed(
            db,
            recorders,
            [
                make_event("a", value=1, occurred_at=at(2026, 3, 14, 23, 59, 59)),
                # 08:00 on the 15th in Tokyo is still the 14th, 23:00 UTC
                make_event("b", value=2, occurred_at=datetime(2026, 3, 15, 8, 0, tzinfo=tokyo)),
                make_event("c", value=4, occurred_at=at(2026, 3, 15, 0, 0)),
            ],
        )

        async with db.transaction() as session:
            buckets = await query_usage(
                session, customer_id="cus_a", meters=TOKENS, start=START, end=END, window="day"
            )

        assert [(b.window_start, b.value) for b in buckets] == [
            (at(2026, 3, 14), 3),
            (at(2026, 3, 15), 4),
        ]

    async def test_month_windows_cut_on_the_first_of_the_month(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("a", value=1, occurred_at=at(2026, 2, 28, 23, 59, 59, 999_999)),
                make_event("b", value=2, occurred_at=at(2026, 3, 1)),
                make_event("c", value=4, occurred_at=at(2026, 3, 31, 23, 59)),
                make_event("d", value=8, occurred_at=at(2026, 12, 31, 23, 59)),
            ],
        )

        async with db.transaction() as session:
            buckets = await query_usage(
                session, customer_id="cus_a", meters=TOKENS, start=START, end=END, window="month"
            )

        assert [(b.window_start, b.value) for b in buckets] == [
            (at(2026, 2, 1), 1),
            (at(2026, 3, 1), 6),
            (at(2026, 12, 1), 8),
        ]

    async def test_unaligned_start_keeps_the_calendar_bucket_but_only_later_events(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("early", value=1, occurred_at=at(2026, 3, 15, 12, 10)),
                make_event("late", value=2, occurred_at=at(2026, 3, 15, 12, 45)),
            ],
        )

        async with db.transaction() as session:
            buckets = await query_usage(
                session,
                customer_id="cus_a",
                meters=TOKENS,
                start=at(2026, 3, 15, 12, 30),
                end=at(2026, 3, 15, 13, 0),
                window="hour",
            )

        assert buckets == [UsageBucket("input_tokens", at(2026, 3, 15, 12), None, 2)]

    async def test_count_and_max_per_window(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("a", meter="api_calls", occurred_at=at(2026, 3, 15, 1)),
                make_event("b", meter="api_calls", occurred_at=at(2026, 3, 15, 2)),
                make_event("c", meter="api_calls", occurred_at=at(2026, 3, 16, 2)),
                make_event("d", meter="storage_bytes", value=9, occurred_at=at(2026, 3, 15, 1)),
                make_event("e", meter="storage_bytes", value=3, occurred_at=at(2026, 3, 16, 1)),
            ],
        )

        async with db.transaction() as session:
            buckets = await query_usage(
                session,
                customer_id="cus_a",
                meters={"storage_bytes": "max", "api_calls": "count"},
                start=START,
                end=END,
                window="day",
            )

        assert [(b.meter, b.window_start, b.value) for b in buckets] == [
            ("storage_bytes", at(2026, 3, 15), 9),
            ("storage_bytes", at(2026, 3, 16), 3),
            ("api_calls", at(2026, 3, 15), 2),
            ("api_calls", at(2026, 3, 16), 1),
        ]


class TestGroupBy:
    async def test_group_by_model(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("a", value=1, model="gpt-4o"),
                make_event("b", value=2, model="gpt-4o"),
                make_event("c", value=4, model="llama-3-70b"),
                make_event("d", value=8),
            ],
        )

        async with db.transaction() as session:
            buckets = await query_usage(
                session, customer_id="cus_a", meters=TOKENS, start=START, end=END, group_by="model"
            )

        assert [(b.group, b.value) for b in buckets] == [
            (None, 8),
            ("gpt-4o", 3),
            ("llama-3-70b", 4),
        ]

    async def test_group_by_upstream_splits_a_models_usage_by_who_served_it(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("a", value=1, model="gpt-4o", upstream="openai"),
                make_event("b", value=2, model="gpt-4o", upstream="azure"),
                make_event("c", value=4, model="gpt-4o", upstream="openai"),
                make_event("d", value=8),
            ],
        )

        async with db.transaction() as session:
            buckets = await query_usage(
                session,
                customer_id="cus_a",
                meters=TOKENS,
                start=START,
                end=END,
                group_by="upstream",
            )

        assert [(b.group, b.value) for b in buckets] == [(None, 8), ("azure", 2), ("openai", 5)]

    async def test_group_by_key_with_day_windows(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("a", value=1, key_id="key_1", occurred_at=at(2026, 3, 15, 1)),
                make_event("b", value=2, key_id="key_2", occurred_at=at(2026, 3, 15, 2)),
                make_event("c", value=4, key_id="key_1", occurred_at=at(2026, 3, 15, 3)),
                make_event("d", value=8, key_id="key_1", occurred_at=at(2026, 3, 16, 3)),
            ],
        )

        async with db.transaction() as session:
            buckets = await query_usage(
                session,
                customer_id="cus_a",
                meters=TOKENS,
                start=START,
                end=END,
                window="day",
                group_by="key",
            )

        assert [(b.window_start, b.group, b.value) for b in buckets] == [
            (at(2026, 3, 15), "key_1", 5),
            (at(2026, 3, 15), "key_2", 2),
            (at(2026, 3, 16), "key_1", 8),
        ]


class TestIsolation:
    async def test_customers_see_only_their_own_usage(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("e1", customer_id="cus_a", value=1),
                make_event("e1", customer_id="cus_b", value=20),
                make_event("e2", customer_id="cus_b", value=300),
            ],
        )

        async with db.transaction() as session:
            a = await totals(session, customer_id="cus_a", meters=TOKENS, start=START, end=END)
            b = await totals(session, customer_id="cus_b", meters=TOKENS, start=START, end=END)
            c = await totals(session, customer_id="cus_c", meters=TOKENS, start=START, end=END)
            every = await totals(session, customer_id=None, meters=TOKENS, start=START, end=END)

        assert (a, b, c, every) == (
            {"input_tokens": 1},
            {"input_tokens": 320},
            {"input_tokens": 0},
            {"input_tokens": 321},
        )

    async def test_key_filter_and_usage_by_key(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        await seed(
            db,
            recorders,
            [
                make_event("a", value=1, key_id="key_1"),
                make_event("b", value=2, key_id="key_2"),
                make_event("c", meter="api_calls", key_id="key_1"),
                make_event("d", meter="api_calls", key_id="key_1"),
            ],
        )
        meters: dict[str, Aggregation] = {"input_tokens": "sum", "api_calls": "count"}

        async with db.transaction() as session:
            per_key = await usage_by_key(
                session, key_id="key_1", meters=meters, start=START, end=END
            )
            filtered = await query_usage(
                session, customer_id="cus_a", key_id="key_2", meters=meters, start=START, end=END
            )

        assert per_key == {"input_tokens": 1, "api_calls": 2}
        assert [(b.meter, b.value) for b in filtered] == [("input_tokens", 2), ("api_calls", 0)]


class TestListEvents:
    async def test_newest_first_with_paging(
        self, db: Database, recorders: RecorderFactory, make_event: EventFactory
    ) -> None:
        recorder = recorders(db)
        for n in range(5):
            await recorder.record([make_event(f"e{n}", value=n)])
        await recorder.record([make_event("other", customer_id="cus_b")])

        async with db.transaction() as session:
            page1 = await service.list_events(session, customer_id="cus_a", limit=3)
            page2 = await service.list_events(
                session, customer_id="cus_a", limit=3, before_id=page1[-1].id
            )

        assert [e.event_id for e in page1] == ["e4", "e3", "e2"]
        assert [e.event_id for e in page2] == ["e1", "e0"]


class TestInvalidQueries:
    @pytest.mark.parametrize("end", [START, START - timedelta(seconds=1)])
    async def test_end_not_after_start_raises(self, db: Database, end: datetime) -> None:
        async with db.transaction() as session:
            with pytest.raises(InvalidUsageWindow) as caught:
                await query_usage(session, customer_id="cus_a", meters=TOKENS, start=START, end=end)

        assert (caught.value.status, caught.value.code) == (422, "invalid-usage-window")

    @pytest.mark.parametrize(
        ("window", "end"),
        [
            ("hour", START + timedelta(hours=10_001)),
            ("day", START + timedelta(days=10_001)),
            ("month", datetime(2026 + 834, 1, 1, tzinfo=UTC)),
        ],
    )
    async def test_too_many_windows_raise(self, db: Database, window: str, end: datetime) -> None:
        async with db.transaction() as session:
            with pytest.raises(InvalidUsageWindow) as caught:
                await query_usage(
                    session,
                    customer_id="cus_a",
                    meters=TOKENS,
                    start=START,
                    end=end,
                    window=window,  # type: ignore[arg-type]
                )

        assert caught.value.extra["max_windows"] == 10_000

    async def test_exactly_ten_thousand_windows_are_allowed(self, db: Database) -> None:
        async with db.transaction() as session:
            buckets = await query_usage(
                session,
                customer_id="cus_a",
                meters=TOKENS,
                start=START,
                end=START + timedelta(hours=10_000),
                window="hour",
            )

        assert buckets == []

    async def test_naive_time_raises(self, db: Database) -> None:
        async with db.transaction() as session:
            with pytest.raises(InvalidUsageQuery):
                await query_usage(
                    session,
                    customer_id="cus_a",
                    meters=TOKENS,
                    start=datetime(2026, 1, 1),
                    end=END,
                )

    @pytest.mark.parametrize(
        "bad",
        [
            {"meters": {"input_tokens": "avg"}},
            {"window": "week"},
            {"group_by": "meter"},
        ],
    )
    async def test_unknown_aggregation_window_or_group_raises(
        self, db: Database, bad: dict[str, object]
    ) -> None:
        query: dict[str, object] = {"customer_id": "cus_a", "meters": TOKENS, "start": START}
        async with db.transaction() as session:
            with pytest.raises(InvalidUsageQuery):
                await query_usage(session, end=END, **{**query, **bad})  # type: ignore[arg-type]


class TestWindowCount:
    @pytest.mark.parametrize(
        ("start", "end", "window", "count"),
        [
            (at(2026, 3, 15, 12), at(2026, 3, 15, 13), "hour", 1),
            (at(2026, 3, 15, 12, 30), at(2026, 3, 15, 13, 0, 1), "hour", 2),
            (at(2026, 3, 15), at(2026, 3, 17), "day", 2),
            (at(2026, 3, 15, 23), at(2026, 3, 16, 1), "day", 2),
            (at(2026, 1, 1), at(2026, 2, 1), "month", 1),
            (at(2026, 1, 31), at(2026, 2, 1, 0, 0, 1), "month", 2),
            (at(2025, 12, 15), at(2027, 1, 1), "month", 13),
        ],
    )
    def test_window_count(self, start: datetime, end: datetime, window: str, count: int) -> None:
        assert service.window_count(start, end, window) == count  # type: ignore[arg-type]
