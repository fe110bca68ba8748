"""GCRA behaviour, one test body per scenario, run on memory:// and redis://.

Memory runs on the frozen clock, so its numbers are exact and `advance` moves the clock; Redis
runs on the server's real clock, so `advance` sleeps and time-valued numbers get `slack`.
Limits use long periods where exact numbers matter (Redis time moves by microseconds between
calls) and short periods where time must pass (Redis sleeps 0.6 s at most instead of a minute).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.ratelimit import (
    Limit,
    RateLimitCostTooLarge,
    RateLimited,
    RateLimiter,
    headers,
    storage_from_url,
)


@dataclass
class Backend:
    """A limiter on one backend, with a way to let time pass on that backend's clock."""

    name: str
    limiter: RateLimiter
    advance: Callable[[float], Awaitable[None]]
    """Let `seconds` pass: FrozenClock.advance for memory, a real sleep for Redis."""
    slack: float
    """Tolerance (seconds) of time-valued assertions: 0 on the frozen clock."""

    def approx(self, seconds: float) -> object:
        """`seconds`, exactly on memory, within `slack` on Redis (real time passes)."""
        return pytest.approx(seconds, abs=max(self.slack, 1e-9))


@pytest.fixture(params=["memory", "redis"])
def storage_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
async def backend(storage_url: str, clock: FrozenClock) -> AsyncIterator[Backend]:
    limiter = RateLimiter(storage_from_url(storage_url, clock=clock))
    if storage_url == "memory://":

        async def advance_clock(seconds: float) -> None:
            clock.advance(seconds)

        yield Backend("memory", limiter, advance_clock, slack=0.0)
    else:

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(seconds)

        yield Backend("redis", limiter, sleep, slack=0.25)
    await limiter.close()


TEN_PER_MINUTE = Limit(10, 60.0)
"""T = 6 s."""
TOKENS_PER_HOUR = Limit(1000, 3600.0)
"""T = 3.6 s per token: token counts stay put while a loaded machine runs the test."""


class TestBurst:
    async def test_amount_requests_pass_back_to_back_then_the_next_is_denied(
        self, backend: Backend
    ) -> None:
        results = [await backend.limiter.hit(TEN_PER_MINUTE, "burst") for _ in range(11)]

        assert [r.allowed for r in results] == [True] * 10 + [False]

    async def test_one_more_request_passes_after_an_emission_interval(
        self, backend: Backend
    ) -> None:
        limit = Limit(10, 5.0)  # T = 0.5 s
        for _ in range(10):
            assert (await backend.limiter.hit(limit, "steady")).allowed
        assert not (await backend.limiter.hit(limit, "steady")).allowed

        await backend.advance(0.6)

        assert (await backend.limiter.hit(limit, "steady")).allowed
        assert not (await backend.limiter.hit(limit, "steady")).allowed

    async def test_keys_are_independent(self, backend: Backend) -> None:
        for _ in range(10):
            await backend.limiter.hit(TEN_PER_MINUTE, "cus_a")

        assert not (await backend.limiter.hit(TEN_PER_MINUTE, "cus_a")).allowed
        assert (await backend.limiter.hit(TEN_PER_MINUTE, "cus_b")).allowed

    async def test_clear_restores_a_full_burst(self, backend: Backend) -> None:
        for _ in range(10):
            await backend.limiter.hit(TEN_PER_MINUTE, "cus_a", "text")

        await backend.limiter.clear("cus_a/text")

        assert (await backend.limiter.test(TEN_PER_MINUTE, "cus_a", "text")).remaining == 10


class TestStats:
    async def test_first_hit_reports_remaining_and_reset(self, backend: Backend) -> None:
        stats = await backend.limiter.hit(TEN_PER_MINUTE, "k")

        assert (stats.allowed, stats.limit, stats.remaining) == (True, 10, 9)
        assert stats.reset_after_seconds == backend.approx(6.0)
        assert stats.retry_after_seconds == 0

    async def test_denied_hit_reports_retry_after_one_emission_interval(
        self, backend: Backend
    ) -> None:
        for _ in range(10):
            last = await backend.limiter.hit(TEN_PER_MINUTE, "k")
        assert last.remaining == 0
        assert last.reset_after_seconds == backend.approx(60.0)

        denied = await backend.limiter.hit(TEN_PER_MINUTE, "k")

        assert (denied.allowed, denied.remaining) == (False, 0)
        assert denied.retry_after_seconds == backend.approx(6.0)
        assert denied.reset_after_seconds == backend.approx(60.0)

    async def test_cost_advances_by_cost_emission_intervals(self, backend: Backend) -> None:
        limit = Limit(100, 600.0)  # T = 6 s

        taken = await backend.limiter.hit(limit, "tokens", cost=30)
        denied = await backend.limiter.hit(limit, "tokens", cost=80)

        assert (taken.allowed, taken.remaining) == (True, 70)
        assert taken.reset_after_seconds == backend.approx(180.0)
        # 180 s ahead + 80 * 6 s - 600 s window = 60 s
        assert (denied.allowed, denied.remaining) == (False, 70)
        assert denied.retry_after_seconds == backend.approx(60.0)

    async def test_partial_replenishment_after_time_passes(self, backend: Backend) -> None:
        limit = Limit(10, 2.0)  # T = 0.2 s
        for _ in range(10):
            await backend.limiter.hit(limit, "k")

        await backend.advance(0.7)
        probe = await backend.limiter.test(limit, "k", cost=5)

        # ahead = 2.0 - 0.7 = 1.3 s (less on Redis if the sleep overran):
        # remaining = floor((2.0 - ahead) / 0.2); a cost of 5 needs ahead + 1.0 - 2.0 s more
        ahead = probe.reset_after_seconds
        assert ahead == pytest.approx(1.3, abs=backend.slack or 1e-9)
        assert probe.remaining == (2_000_000 - round(ahead * 1_000_000)) * 10 // 2_000_000
        assert probe.retry_after_seconds == pytest.approx(ahead - 1.0, abs=1e-6)
        assert not probe.allowed
        if backend.name == "memory":
            assert probe.remaining == 3

    async def test_test_consumes_nothing(self, backend: Backend) -> None:
        for _ in range(3):
            probe = await backend.limiter.test(TEN_PER_MINUTE, "k", cost=10)

        assert (probe.allowed, probe.remaining) == (True, 10)
        assert probe.reset_after_seconds == 0


class TestHitAll:
    async def test_a_denied_token_limit_leaves_the_request_limit_untouched(
        self, backend: Backend
    ) -> None:
        rpm, tpm = Limit(10, 60.0), TOKENS_PER_HOUR
        first = await backend.limiter.hit_all([(rpm, "c:rpm", 1), (tpm, "c:tpm", 900)])

        second = await backend.limiter.hit_all([(rpm, "c:rpm", 1), (tpm, "c:tpm", 200)])

        assert first.allowed and [s.remaining for s in first.stats] == [9, 100]
        assert not second.allowed
        assert [s.remaining for s in second.stats] == [9, 100]
        assert second.stats[0].retry_after_seconds == 0
        # tokens: 3240 s ahead + 200 * 3.6 s - 3600 s = 360 s
        assert second.retry_after_seconds == backend.approx(360.0)
        untouched = await backend.limiter.test_all([(rpm, "c:rpm", 1)])
        assert untouched.stats[0].remaining == 9

    async def test_all_fitting_requests_are_all_consumed(self, backend: Backend) -> None:
        rpm, tpm = Limit(10, 60.0), TOKENS_PER_HOUR

        decision = await backend.limiter.hit_all([(rpm, "c:rpm", 1), (tpm, "c:tpm", 100)])
        after = await backend.limiter.test_all([(rpm, "c:rpm", 0), (tpm, "c:tpm", 0)])

        assert decision.allowed
        assert [s.remaining for s in after.stats] == [9, 900]

    async def test_denied_decision_raises_rate_limited_with_extras(self, backend: Backend) -> None:
        limit = Limit(2, 60.0)
        await backend.limiter.hit_all([(limit, "k", 2)])
        decision = await backend.limiter.hit_all([(limit, "k", 1)])

        with pytest.raises(RateLimited) as caught:
            decision.raise_if_denied()

        assert caught.value.status == 429
        assert caught.value.extra == {
            "retry_after_seconds": 30,
            "limit": 2,
            "remaining": 0,
            "reset_seconds": 60,
        }

    async def test_headers_of_a_denied_decision(self, backend: Backend) -> None:
        limit = Limit(2, 60.0, "pair")
        for _ in range(2):
            await backend.limiter.hit(limit, "k")

        denied = await backend.limiter.hit(limit, "k")

        assert headers([denied]) == {
            "RateLimit-Limit": "2",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": "60",
            "RateLimit-Policy": '"pair";q=2;w=60',
            "RateLimit": '"pair";r=0;t=30',  # the next unit is freed when the retry passes
            "Retry-After": "30",
        }


class TestConsume:
    async def test_forced_consume_puts_the_key_into_debt(self, backend: Backend) -> None:
        stats = await backend.limiter.consume(TEN_PER_MINUTE, "debt", 20)

        denied = await backend.limiter.hit(TEN_PER_MINUTE, "debt")

        assert (stats.remaining, stats.retry_after_seconds) == (0, 0)
        assert stats.reset_after_seconds == backend.approx(120.0)
        # 120 s ahead + 6 s - 60 s window
        assert not denied.allowed
        assert denied.retry_after_seconds == backend.approx(66.0)

    async def test_consume_after_a_hit_adds_to_the_same_key(self, backend: Backend) -> None:
        tpm = TOKENS_PER_HOUR
        await backend.limiter.hit_all([(tpm, "tpm", 100)])

        stats = await backend.limiter.consume(tpm, "tpm", 250)

        assert stats.remaining == 650


class TestRefund:
    async def test_a_refund_gives_back_what_a_hit_took(self, backend: Backend) -> None:
        tpm = TOKENS_PER_HOUR
        await backend.limiter.hit_all([(tpm, "tpm", 400)])

        stats = await backend.limiter.refund(tpm, "tpm", 300)

        assert stats.remaining == 900
        assert (await backend.limiter.test(tpm, "tpm", cost=900)).allowed

    async def test_a_refund_beyond_what_was_taken_leaves_the_key_unused(
        self, backend: Backend
    ) -> None:
        await backend.limiter.hit(TEN_PER_MINUTE, "k", cost=3)

        stats = await backend.limiter.refund(TEN_PER_MINUTE, "k", 50)

        assert (stats.remaining, stats.reset_after_seconds) == (10, 0)
        burst = await backend.limiter.hit(TEN_PER_MINUTE, "k", cost=10)
        assert burst.allowed  # a full burst, never more than the limit
        assert not (await backend.limiter.hit(TEN_PER_MINUTE, "k")).allowed

    async def test_a_refund_and_a_debt_of_one_key_settle_together(self, backend: Backend) -> None:
        tpm = TOKENS_PER_HOUR
        await backend.limiter.hit_all([(tpm, "tpm", 500)])

        taken, given = await asyncio.gather(
            backend.limiter.consume(tpm, "tpm", 100), backend.limiter.refund(tpm, "tpm", 300)
        )

        assert taken.remaining == given.remaining == 700


class TestCostTooLarge:
    async def test_cost_above_amount_is_rejected_and_consumes_nothing(
        self, backend: Backend
    ) -> None:
        rpm, tpm = Limit(10, 60.0), TOKENS_PER_HOUR

        with pytest.raises(RateLimitCostTooLarge) as caught:
            await backend.limiter.hit_all([(rpm, "rpm", 1), (tpm, "tpm", 1001)])

        assert (caught.value.status, caught.value.code) == (422, "rate-limit-cost-too-large")
        assert caught.value.extra == {"cost": 1001, "limit": 1000}
        untouched = await backend.limiter.test_all([(rpm, "rpm", 0), (tpm, "tpm", 0)])
        assert [s.remaining for s in untouched.stats] == [10, 1000]


class TestConcurrency:
    async def test_hundred_concurrent_hits_allow_exactly_the_limit(self, backend: Backend) -> None:
        results = await asyncio.gather(
            *(backend.limiter.hit(TEN_PER_MINUTE, "hot") for _ in range(100))
        )

        assert sum(r.allowed for r in results) == 10

    async def test_hundred_concurrent_multi_limit_hits_stay_all_or_nothing(
        self, backend: Backend
    ) -> None:
        rpm, tpm = Limit(50, 3600.0), TOKENS_PER_HOUR

        decisions = await asyncio.gather(
            *(
                backend.limiter.hit_all([(rpm, "hot:rpm", 1), (tpm, "hot:tpm", 100)])
                for _ in range(100)
            )
        )

        assert sum(d.allowed for d in decisions) == 10
        after = await backend.limiter.test_all([(rpm, "hot:rpm", 0), (tpm, "hot:tpm", 0)])
        assert [s.remaining for s in after.stats] == [40, 0]
