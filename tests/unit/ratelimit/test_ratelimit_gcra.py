"""GCRA arithmetic on MemoryStorage and a frozen clock: exact numbers, no network."""

from __future__ import annotations

import asyncio
import math

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.ratelimit import (
    Limit,
    MemoryStorage,
    RateLimitCostTooLarge,
    RateLimiter,
    key_for,
)


@pytest.fixture
def storage(clock: FrozenClock) -> MemoryStorage:
    return MemoryStorage(clock=clock)


@pytest.fixture
def limiter(storage: MemoryStorage) -> RateLimiter:
    return RateLimiter(storage)


class TestLimit:
    def test_emission_interval_and_tolerance_add_up_to_the_period(self) -> None:
        limit = Limit(10, 60.0)

        assert limit.emission_interval_seconds == 6.0
        assert limit.tolerance_seconds == 54.0
        assert limit.period_us == 60_000_000

    def test_increment_is_cost_times_interval_rounded_down_to_a_microsecond(self) -> None:
        limit = Limit(7, 60.0)  # T = 8,571,428.57 µs

        assert limit.increment_us(1) == 8_571_428
        assert limit.increment_us(7) == 60_000_000
        assert Limit(150_000_000, 60.0).increment_us(1_000) == 400

    @pytest.mark.parametrize("amount", [0, -1, 1.5, True])
    def test_amount_must_be_a_positive_int(self, amount: object) -> None:
        with pytest.raises(ValueError):
            Limit(amount, 60.0)  # type: ignore[arg-type]

    @pytest.mark.parametrize("period", [0.0, -1.0, math.inf, math.nan, 1e-9])
    def test_period_must_be_positive_finite_and_at_least_a_microsecond(self, period: float) -> None:
        with pytest.raises(ValueError):
            Limit(10, period)

    def test_constructors_and_text(self) -> None:
        assert Limit.per_minute(60) == Limit(60, 60.0)
        assert Limit.per_second(5).period_seconds == 1.0
        assert Limit.per_hour(1).period_seconds == 3600.0
        assert Limit.per_day(1).period_seconds == 86400.0
        assert str(Limit(10, 60.0)) == "10/60s"


class TestBurstAndSteadyRate:
    async def test_burst_then_one_per_emission_interval(
        self, limiter: RateLimiter, clock: FrozenClock
    ) -> None:
        limit = Limit(10, 60.0)
        burst = [(await limiter.hit(limit, "k")).allowed for _ in range(11)]

        clock.advance(5.999999)
        early = await limiter.hit(limit, "k")
        clock.advance(0.000001)
        on_time = await limiter.hit(limit, "k")
        again = await limiter.hit(limit, "k")

        assert burst == [True] * 10 + [False]
        assert not early.allowed
        assert early.retry_after_seconds == pytest.approx(0.000001)
        assert on_time.allowed
        assert not again.allowed
        assert again.retry_after_seconds == 6.0

    async def test_non_integral_interval_still_allows_exactly_amount(
        self, limiter: RateLimiter
    ) -> None:
        limit = Limit(7, 60.0)

        results = [(await limiter.hit(limit, "k")).allowed for _ in range(8)]

        assert results == [True] * 7 + [False]

    async def test_idle_key_recovers_a_full_burst_but_no_more(
        self, limiter: RateLimiter, clock: FrozenClock
    ) -> None:
        limit = Limit(10, 60.0)
        await limiter.hit(limit, "k", cost=10)

        clock.advance(3600)
        results = [(await limiter.hit(limit, "k")).allowed for _ in range(11)]

        assert results == [True] * 10 + [False]


class TestFormulas:
    async def test_remaining_reset_and_retry_after_partial_replenishment(
        self, limiter: RateLimiter, clock: FrozenClock
    ) -> None:
        limit = Limit(10, 60.0)  # T = 6 s, tau = 54 s
        await limiter.hit(limit, "k", cost=10)  # TAT = now + 60 s

        clock.advance(15)  # 45 s ahead
        probe = await limiter.test(limit, "k", cost=4)

        # remaining = floor((tau + T - ahead) / T) = floor(15 / 6) = 2
        # retry     = ahead + cost*T - (tau + T) = 45 + 24 - 60 = 9 s
        assert (probe.allowed, probe.remaining) == (False, 2)
        assert probe.reset_after_seconds == 45.0
        assert probe.retry_after_seconds == 9.0

        clock.advance(9)
        assert (await limiter.hit(limit, "k", cost=4)).allowed

    async def test_retry_after_is_exactly_when_the_same_request_passes(
        self, limiter: RateLimiter, clock: FrozenClock
    ) -> None:
        limit = Limit(100, 60.0)
        await limiter.hit(limit, "k", cost=95)

        denied = await limiter.hit(limit, "k", cost=30)
        clock.advance(denied.retry_after_seconds - 0.000001)
        still_denied = await limiter.hit(limit, "k", cost=30)
        clock.advance(0.000001)
        passed = await limiter.hit(limit, "k", cost=30)

        # ahead 57 s + 30 * 0.6 s - 60 s = 15 s
        assert denied.retry_after_seconds == 15.0
        assert not still_denied.allowed
        assert passed.allowed

    async def test_debt_from_consume_is_waited_off(
        self, limiter: RateLimiter, clock: FrozenClock
    ) -> None:
        limit = Limit(10, 60.0)
        await limiter.consume(limit, "k", 25)  # 150 s ahead: 90 s of debt

        denied = await limiter.hit(limit, "k")
        clock.advance(denied.retry_after_seconds)
        passed = await limiter.hit(limit, "k")

        assert denied.retry_after_seconds == 96.0
        assert passed.allowed

    async def test_zero_cost_hit_is_a_free_probe_unless_in_debt(self, limiter: RateLimiter) -> None:
        limit = Limit(10, 60.0)
        await limiter.hit(limit, "k", cost=10)
        full = await limiter.hit(limit, "k", cost=0)

        await limiter.consume(limit, "k", 1)
        in_debt = await limiter.hit(limit, "k", cost=0)

        assert full.allowed and full.remaining == 0
        assert not in_debt.allowed


class TestConsumeRounds:
    async def test_concurrent_consumes_share_storage_calls_and_all_count(
        self, limiter: RateLimiter, storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        limit, other = Limit(100, 60.0), Limit(50, 60.0)
        calls: list[int] = []
        real_gcra = storage.gcra

        async def counted(cells, mode):  # type: ignore[no-untyped-def]
            calls.append(len(cells))
            return await real_gcra(cells, mode)

        monkeypatch.setattr(storage, "gcra", counted)

        results = await asyncio.gather(
            *(limiter.consume(limit, "k", 3) for _ in range(10)),
            limiter.consume(limit, "j", 5),
            limiter.consume(other, "k", 1),  # the same key under another limit: next round
        )

        assert calls == [2, 1]  # all queued before the first round ran; then the other limit
        assert results[9].reset_after_seconds == pytest.approx(30 * 0.6)
        assert results[10].reset_after_seconds == pytest.approx(5 * 0.6)
        left = await limiter.test(limit, "k")  # 10 x 3 at 0.6 s, then 1 at 1.2 s
        assert left.reset_after_seconds == pytest.approx(30 * 0.6 + 1.2)


class TestValidation:
    async def test_cost_above_amount_raises_and_consume_accepts_it(
        self, limiter: RateLimiter
    ) -> None:
        limit = Limit(10, 60.0)

        with pytest.raises(RateLimitCostTooLarge):
            await limiter.hit(limit, "k", cost=11)
        with pytest.raises(RateLimitCostTooLarge):
            await limiter.test(limit, "k", cost=11)
        stats = await limiter.consume(limit, "k", 11)

        assert stats.reset_after_seconds == 66.0

    @pytest.mark.parametrize("cost", [-1, 1.0, True])
    async def test_cost_must_be_a_non_negative_int(
        self, limiter: RateLimiter, cost: object
    ) -> None:
        with pytest.raises(ValueError):
            await limiter.hit_all([(Limit(10, 60.0), "k", cost)])  # type: ignore[list-item]

    async def test_repeated_key_in_one_decision_raises(self, limiter: RateLimiter) -> None:
        limit = Limit(10, 60.0)

        with pytest.raises(ValueError, match="distinct"):
            await limiter.hit_all([(limit, "k", 1), (limit, "k", 1)])

    async def test_empty_decision_is_allowed_without_windows(self, limiter: RateLimiter) -> None:
        decision = await limiter.hit_all([])

        assert decision.allowed
        assert decision.stats == []
        assert decision.retry_after_seconds == 0

    def test_key_joins_identifiers(self) -> None:
        assert key_for("cus_1", "text", "rpm") == "cus_1/text/rpm"
        with pytest.raises(ValueError):
            key_for()
        with pytest.raises(ValueError):
            key_for("cus_1", "")
