"""MemoryStorage: pruning keeps memory bounded; storage_from_url picks backends."""

from __future__ import annotations

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.ratelimit import Limit, MemoryStorage, RateLimiter, storage_from_url
from tollhouse.ratelimit.storage.failover import FailoverStorage
from tollhouse.ratelimit.storage.redis import GCRA_SCRIPT, RedisStorage

LIMIT = Limit(10, 60.0)


class TestPruning:
    async def test_keys_past_their_tat_are_dropped(self, clock: FrozenClock) -> None:
        storage = MemoryStorage(clock=clock, prune_interval_seconds=30)
        limiter = RateLimiter(storage)
        for n in range(1000):
            await limiter.hit(LIMIT, f"cus_{n}")
        assert len(storage) == 1000

        clock.advance(61)  # every TAT (now + 6 s) passed, and a prune is due
        await limiter.hit(LIMIT, "late")

        assert len(storage) == 1

    async def test_prune_waits_for_its_interval(self, clock: FrozenClock) -> None:
        storage = MemoryStorage(clock=clock, prune_interval_seconds=120)
        limiter = RateLimiter(storage)
        await limiter.hit(LIMIT, "early")

        clock.advance(61)
        await limiter.hit(LIMIT, "late")

        assert len(storage) == 2

    async def test_keys_in_debt_survive_pruning_until_their_tat(self, clock: FrozenClock) -> None:
        storage = MemoryStorage(clock=clock, prune_interval_seconds=30)
        limiter = RateLimiter(storage)
        await limiter.consume(LIMIT, "debtor", 50)  # TAT = now + 300 s
        await limiter.hit(LIMIT, "casual")

        clock.advance(100)
        pruned = storage.prune()
        clock.advance(200)
        pruned_later = storage.prune()

        assert (pruned, pruned_later) == (1, 1)
        assert len(storage) == 0

    async def test_pruned_key_behaves_like_its_old_state(self, clock: FrozenClock) -> None:
        storage = MemoryStorage(clock=clock, prune_interval_seconds=1)
        limiter = RateLimiter(storage)
        await limiter.hit(LIMIT, "k", cost=10)

        clock.advance(60)
        storage.prune()
        probe = await limiter.test(LIMIT, "k")

        assert (probe.remaining, probe.reset_after_seconds) == (10, 0)

    def test_prune_interval_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            MemoryStorage(prune_interval_seconds=0)


class TestStorageFromUrl:
    async def test_memory_url_gives_memory_storage_on_the_given_clock(
        self, clock: FrozenClock
    ) -> None:
        storage = storage_from_url("memory://", clock=clock)
        outcome = await storage.gcra([], "test")

        assert isinstance(storage, MemoryStorage)
        assert outcome.now_us == int(clock.timestamp()) * 1_000_000

    @pytest.mark.parametrize(
        "url", ["redis://127.0.0.1:6379/0", "rediss://cache.example:6380/2", "unix:///tmp/r.sock"]
    )
    async def test_redis_urls_give_redis_storage_without_connecting(self, url: str) -> None:
        storage = storage_from_url(url)

        assert isinstance(storage, FailoverStorage)
        assert isinstance(storage.primary, RedisStorage)
        assert storage.fallback is None  # fail-closed by default
        await storage.close()

    async def test_fail_open_falls_back_to_memory_on_the_given_clock(
        self, clock: FrozenClock
    ) -> None:
        storage = storage_from_url("redis://127.0.0.1:6379/0", clock=clock, on_failure="fail-open")

        assert isinstance(storage, FailoverStorage)
        assert isinstance(storage.fallback, MemoryStorage)
        await storage.close()

    def test_unknown_scheme_raises(self) -> None:
        with pytest.raises(ValueError, match="memcached"):
            storage_from_url("memcached://127.0.0.1")

    def test_lua_script_is_packaged_and_reads_the_server_time_once(self) -> None:
        assert GCRA_SCRIPT.count("redis.call('TIME')") == 1
