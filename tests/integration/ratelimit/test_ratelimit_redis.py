"""Redis-only properties: key layout and expiry, server time, script reload, error mapping,
coalescing of concurrent decisions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from tollhouse.clock import FrozenClock
from tollhouse.ratelimit import (
    Cell,
    Limit,
    RateLimited,
    RateLimiter,
    RateLimitStorageError,
    storage_from_url,
)
from tollhouse.ratelimit.storage.redis import KEY_PREFIX, RedisStorage

UNREACHABLE_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def limiter(redis_url: str) -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(storage_from_url(redis_url))
    yield limiter
    await limiter.close()


class TestKeys:
    async def test_tat_is_stored_in_integer_microseconds_under_the_namespace(
        self, limiter: RateLimiter, raw: aioredis.Redis
    ) -> None:
        await limiter.hit(Limit(10, 60.0), "cus_1", "text")
        server_seconds, server_us = await raw.time()

        value = await raw.get("th:rl:cus_1/text")
        ttl_ms = await raw.pttl("th:rl:cus_1/text")

        assert isinstance(value, bytes)
        tat_us = int(value)
        now_us = server_seconds * 1_000_000 + server_us
        assert 5_900_000 < tat_us - now_us <= 6_000_000
        assert 5_900 < ttl_ms <= 6_000

    async def test_key_expires_when_its_tat_passes(
        self, limiter: RateLimiter, raw: aioredis.Redis
    ) -> None:
        await limiter.hit(Limit(10, 0.5), "short")  # TAT = now + 50 ms

        await asyncio.sleep(0.15)

        assert await raw.exists(KEY_PREFIX + "short") == 0

    async def test_test_writes_nothing(self, limiter: RateLimiter, raw: aioredis.Redis) -> None:
        await limiter.test(Limit(10, 60.0), "probe")

        assert await raw.exists(KEY_PREFIX + "probe") == 0


class TestServerTime:
    async def test_time_comes_from_the_server_not_the_local_clock(self, redis_url: str) -> None:
        stale = FrozenClock(datetime(2001, 1, 1, tzinfo=UTC))
        storage = storage_from_url(redis_url, clock=stale)
        try:
            outcome = await storage.gcra([Cell("t", 1_000, 60_000_000)], "test")
        finally:
            await storage.close()

        assert abs(outcome.now_us / 1_000_000 - time.time()) < 5


class TestScript:
    async def test_script_is_reloaded_after_a_script_flush(
        self, limiter: RateLimiter, raw: aioredis.Redis
    ) -> None:
        limit = Limit(10, 60.0)
        await limiter.hit(limit, "k")

        await raw.script_flush()
        stats = await limiter.hit(limit, "k")

        assert (stats.allowed, stats.remaining) == (True, 8)


class TestErrors:
    async def test_unreachable_redis_raises_storage_error(self) -> None:
        limiter = RateLimiter(storage_from_url(UNREACHABLE_URL))
        started = time.monotonic()
        try:
            with pytest.raises(RateLimitStorageError) as caught:
                await limiter.hit_all([(Limit(10, 60.0), "k", 1)])
        finally:
            await limiter.close()

        assert time.monotonic() - started < 3
        assert (caught.value.status, caught.value.code) == (503, "rate-limit-unavailable")
        assert not isinstance(caught.value, RateLimited)
        assert caught.value.__cause__ is not None

    async def test_unreachable_redis_raises_storage_error_on_clear(self) -> None:
        storage = RedisStorage(UNREACHABLE_URL)
        try:
            with pytest.raises(RateLimitStorageError):
                await storage.clear("k")
        finally:
            await storage.close()

    async def test_script_error_raises_storage_error(
        self, limiter: RateLimiter, raw: aioredis.Redis
    ) -> None:
        await raw.lpush(KEY_PREFIX + "wrongtype", "x")

        with pytest.raises(RateLimitStorageError):
            await limiter.hit(Limit(10, 60.0), "wrongtype")


@pytest.fixture
async def counted(redis_url: str) -> AsyncIterator[tuple[RateLimiter, list[int]]]:
    """A limiter over a RedisStorage whose EVALSHA calls are counted (decisions per call)."""
    storage = RedisStorage(redis_url)
    calls: list[int] = []
    real = storage.client.evalsha

    async def evalsha(sha: str, numkeys: int, *keys_and_args: object) -> object:
        calls.append(int(str(keys_and_args[numkeys])))  # ARGV[1]: the number of decisions
        return await real(sha, numkeys, *keys_and_args)

    storage.client.evalsha = evalsha  # type: ignore[method-assign]
    limiter = RateLimiter(storage)
    yield limiter, calls
    await limiter.close()


class TestCoalescing:
    async def test_decisions_asked_during_a_call_share_the_next_in_order(
        self, counted: tuple[RateLimiter, list[int]]
    ) -> None:
        limiter, calls = counted
        limit = Limit(10, 60.0)

        stats = await asyncio.gather(*(limiter.hit(limit, "shared") for _ in range(100)))

        # The first goes at once; the 99 asked meanwhile go 64 + 35 (MAX_DECISIONS_PER_CALL).
        assert calls == [1, 64, 35]
        assert [s.remaining for s in stats[:10]] == list(range(9, -1, -1))
        assert [s.allowed for s in stats] == [True] * 10 + [False] * 90

    async def test_an_idle_storage_sends_each_decision_at_once(
        self, counted: tuple[RateLimiter, list[int]]
    ) -> None:
        limiter, calls = counted
        for _ in range(3):
            await limiter.hit(Limit(10, 60.0), "alone")

        assert calls == [1, 1, 1]

    async def test_a_failing_read_fails_its_call_and_writes_nothing(
        self, counted: tuple[RateLimiter, list[int]], raw: aioredis.Redis
    ) -> None:
        limiter, calls = counted
        limit = Limit(10, 60.0)
        await raw.lpush(KEY_PREFIX + "wrongtype", "x")

        results = await asyncio.gather(
            limiter.hit(limit, "a"),
            limiter.hit(limit, "b"),
            limiter.hit(limit, "wrongtype"),
            limiter.hit(limit, "c"),
            return_exceptions=True,
        )

        assert calls == [1, 3]
        first = results[0]
        assert not isinstance(first, BaseException) and first.allowed
        assert all(isinstance(r, RateLimitStorageError) for r in results[1:])
        assert await raw.exists(KEY_PREFIX + "b", KEY_PREFIX + "c") == 0
        assert (await limiter.hit(limit, "b")).remaining == 9  # nothing was consumed

    async def test_a_caller_cancelled_while_waiting_withdraws_its_decision(
        self, counted: tuple[RateLimiter, list[int]], raw: aioredis.Redis
    ) -> None:
        limiter, calls = counted
        limit = Limit(10, 60.0)
        first = asyncio.create_task(limiter.hit(limit, "first"))
        await asyncio.sleep(0)  # its call is under way
        withdrawn = asyncio.create_task(limiter.hit(limit, "withdrawn"))
        await asyncio.sleep(0)  # queued behind it
        withdrawn.cancel()

        assert (await first).allowed
        await limiter.hit(limit, "after")  # the storage is idle again: sent at once

        assert withdrawn.cancelled()
        assert calls == [1, 1]
        assert await raw.exists(KEY_PREFIX + "withdrawn") == 0
