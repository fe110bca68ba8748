"""Quotas: usage counted exactly from the period's usage events; the check blocks exactly the
request that would pass the cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tollhouse.catalog import Catalog
from tollhouse.clock import FrozenClock
from tollhouse.metering import UsageEventIn, UsageRecorder
from tollhouse.storage import Database
from tollhouse.subscriptions import QuotaExceeded, check_quota, enforce_quota, quota_usage

from .conftest import NewCustomer

PERIOD_END = datetime(2026, 4, 15, tzinfo=UTC)


async def record(
    db: Database, clock: FrozenClock, customer_id: str, *events: tuple[str, str, int, datetime]
) -> None:
    recorder = UsageRecorder(db, clock=clock)
    await recorder.start()
    try:
        await recorder.record(
            [
                UsageEventIn(id=i, customer_id=customer_id, meter=m, value=v, occurred_at=at)
                for i, m, v, at in events
            ]
        )
    finally:
        await recorder.stop()


class TestQuotaUsage:
    async def test_counts_sum_and_max_over_the_current_period_only(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer()
        now = clock.now()
        before = now - timedelta(days=1)  # before the period started
        await record(
            sqlite_db, clock, customer_id,
            ("a1", "api_calls", 1, now), ("a2", "api_calls", 1, now),
            ("a2", "api_calls", 1, now),  # duplicate id: counts once
            ("a0", "api_calls", 1, before),
            ("s1", "storage_bytes", 700, now), ("s2", "storage_bytes", 400, now),
        )  # fmt: skip
        async with sqlite_db.sessions() as session:
            usage = {
                q.meter: q
                for q in await quota_usage(session, customer_id, catalog=catalog, clock=clock)
            }
        assert (
            usage["api_calls"].used,
            usage["api_calls"].limit,
            usage["api_calls"].remaining,
        ) == (2, 3, 1)
        assert (usage["storage_bytes"].used, usage["storage_bytes"].remaining) == (700, 300)
        assert usage["images"].limit is None and usage["images"].remaining is None
        assert usage["api_calls"].resets_at == PERIOD_END

    async def test_usage_resets_at_the_boundary_even_before_the_job_runs(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer()
        await record(sqlite_db, clock, customer_id, ("a1", "api_calls", 1, clock.now()))
        clock.set(PERIOD_END + timedelta(hours=1))
        async with sqlite_db.sessions() as session:
            (calls,) = await quota_usage(
                session, customer_id, catalog=catalog, clock=clock, meters=["api_calls"]
            )
        assert (calls.used, calls.resets_at) == (0, datetime(2026, 5, 15, tzinfo=UTC))

    async def test_enforce_blocks_the_request_that_would_pass_the_cap(
        self, sqlite_db: Database, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
    ) -> None:
        customer_id = await new_customer()
        now = clock.now()
        await record(
            sqlite_db, clock, customer_id, ("a1", "api_calls", 1, now), ("a2", "api_calls", 1, now)
        )
        async with sqlite_db.sessions() as session:
            status = await enforce_quota(
                session, customer_id, "api_calls", 1, catalog=catalog, clock=clock
            )
        assert status.used == 2
        await record(sqlite_db, clock, customer_id, ("a3", "api_calls", 1, now))
        async with sqlite_db.sessions() as session:
            with pytest.raises(QuotaExceeded) as raised:
                await enforce_quota(
                    session, customer_id, "api_calls", 1, catalog=catalog, clock=clock
                )
        problem = raised.value.to_problem()
        assert (problem["status"], problem["meter"], problem["limit"], problem["used"]) == (
            429,
            "api_calls",
            3,
            3,
        )
        assert problem["type"].endswith("/quota-exceeded")
        assert problem["resets_at"] == PERIOD_END.isoformat()
        assert problem["retry_after_seconds"] == int((PERIOD_END - now).total_seconds())


class TestCheckQuota:
    NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)

    def test_request_reaching_the_limit_exactly_is_allowed(self) -> None:
        check_quota(meter="jobs", used=9, requested=1, limit=10, resets_at=PERIOD_END, now=self.NOW)

    def test_request_one_past_the_limit_is_refused(self) -> None:
        with pytest.raises(QuotaExceeded):
            check_quota(
                meter="jobs", used=10, requested=1, limit=10, resets_at=PERIOD_END, now=self.NOW
            )

    def test_max_meter_checks_the_new_level(self) -> None:
        check_quota(meter="storage_bytes", used=900, requested=1000, limit=1000,
                    resets_at=PERIOD_END, now=self.NOW, aggregation="max")  # fmt: skip
        with pytest.raises(QuotaExceeded):
            check_quota(meter="storage_bytes", used=900, requested=1001, limit=1000,
                        resets_at=PERIOD_END, now=self.NOW, aggregation="max")  # fmt: skip

    def test_uncapped_meter_always_passes(self) -> None:
        check_quota(
            meter="images",
            used=10**9,
            requested=10**9,
            limit=None,
            resets_at=PERIOD_END,
            now=self.NOW,
        )

    def test_retry_after_is_at_least_one_second(self) -> None:
        with pytest.raises(QuotaExceeded) as raised:
            check_quota(
                meter="jobs", used=1, requested=1, limit=1, resets_at=self.NOW, now=self.NOW
            )
        assert raised.value.retry_after_seconds == 1
