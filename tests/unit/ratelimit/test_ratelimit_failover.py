"""FailoverStorage: what decides while the shared backend is down, and when it is tried again.

The primary is a stand-in that fails or answers on demand, and time is a counter, so every
transition is exact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.ratelimit import (
    Cap,
    Cell,
    InFlightLimiter,
    Limit,
    MemoryStorage,
    Mode,
    Outcome,
    RateLimiter,
    RateLimitStorageError,
    TooManyInFlight,
)
from tollhouse.ratelimit.storage import Slot
from tollhouse.ratelimit.storage.failover import FailoverStorage

LOGGER = "tollhouse.ratelimit.storage.failover"
FIVE_PER_MINUTE = Limit(5, 60.0, "five")


class Primary:
    """A backend that answers (everything allowed, at time 0) unless `down`."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.cleared: list[str] = []

    async def gcra(self, cells: Sequence[Cell], mode: Mode) -> Outcome:
        self.calls += 1
        if self.down:
            raise RateLimitStorageError("connection refused", backend="redis")
        return Outcome(allowed=True, now_us=0, tats_us=[0 for _ in cells])

    async def take_slot(self, slots: Sequence[Slot], member: str, lease_ms: int) -> int | None:
        self.calls += 1
        if self.down:
            raise RateLimitStorageError("connection refused", backend="redis")
        return None

    async def give_slot(self, keys: Sequence[str], member: str) -> None:
        if self.down:
            raise RateLimitStorageError("connection refused", backend="redis")

    async def renew_slots(self, held: Sequence[tuple[str, str]], lease_ms: int) -> None:
        if self.down:
            raise RateLimitStorageError("connection refused", backend="redis")

    async def clear(self, key: str) -> None:
        self.cleared.append(key)

    async def close(self) -> None:
        pass


class Ticks:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def primary() -> Primary:
    return Primary()


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


def failover(primary: Primary, ticks: Ticks, fallback: MemoryStorage | None) -> FailoverStorage:
    return FailoverStorage(primary, fallback=fallback, monotonic=ticks)


class TestFailClosed:
    async def test_a_failure_answers_503_with_retry_after(
        self, primary: Primary, ticks: Ticks
    ) -> None:
        limiter = RateLimiter(failover(primary, ticks, None))
        primary.down = True

        with pytest.raises(RateLimitStorageError) as caught:
            await limiter.hit(FIVE_PER_MINUTE, "k")

        assert caught.value.status == 503
        assert caught.value.extra["retry_after_seconds"] == 1
        assert isinstance(caught.value.__cause__, RateLimitStorageError)

    async def test_the_primary_is_left_alone_for_the_retry_interval(
        self, primary: Primary, ticks: Ticks
    ) -> None:
        storage = failover(primary, ticks, None)
        limiter = RateLimiter(storage)
        primary.down = True
        with pytest.raises(RateLimitStorageError):
            await limiter.hit(FIVE_PER_MINUTE, "k")
        primary.down = False

        ticks.now += 0.5
        with pytest.raises(RateLimitStorageError):
            await limiter.hit(FIVE_PER_MINUTE, "k")
        assert primary.calls == 1

        ticks.now += 0.5
        assert (await limiter.hit(FIVE_PER_MINUTE, "k")).allowed
        assert primary.calls == 2
        assert not storage.is_down


class TestFailOpen:
    async def test_decisions_are_made_in_process_meanwhile(
        self, primary: Primary, ticks: Ticks, clock: FrozenClock
    ) -> None:
        limiter = RateLimiter(failover(primary, ticks, MemoryStorage(clock=clock)))
        primary.down = True

        results = [await limiter.hit(FIVE_PER_MINUTE, "k") for _ in range(6)]

        assert [r.allowed for r in results] == [True] * 5 + [False]
        assert [r.remaining for r in results[:5]] == [4, 3, 2, 1, 0]
        assert primary.calls == 1  # then left alone: the frozen ticks never pass the interval

    async def test_one_warning_per_outage_and_one_when_it_ends(
        self,
        primary: Primary,
        ticks: Ticks,
        clock: FrozenClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        limiter = RateLimiter(failover(primary, ticks, MemoryStorage(clock=clock)))
        primary.down = True

        with caplog.at_level(logging.WARNING, logger=LOGGER):
            for _ in range(3):  # each retry after the interval fails again
                await limiter.hit(FIVE_PER_MINUTE, "k")
                ticks.now += 1.0
            primary.down = False
            await limiter.hit(FIVE_PER_MINUTE, "k")
            await limiter.hit(FIVE_PER_MINUTE, "k")

        messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert len(messages) == 2
        assert "unreachable" in messages[0] and "fail-open" in messages[0]
        assert "answers again" in messages[1]
        assert primary.calls == 5

    async def test_clear_forgets_the_key_in_both(
        self, primary: Primary, ticks: Ticks, clock: FrozenClock
    ) -> None:
        fallback = MemoryStorage(clock=clock)
        limiter = RateLimiter(failover(primary, ticks, fallback))
        primary.down = True
        await limiter.hit(FIVE_PER_MINUTE, "k", cost=5)

        await limiter.clear("k")

        assert primary.cleared == ["k"]
        assert len(fallback) == 0


class TestInFlightSlots:
    """In-flight caps follow the same policy as the rate limits, on the same outage state."""

    async def test_fail_closed_refuses_with_503_while_down(
        self, primary: Primary, ticks: Ticks
    ) -> None:
        limiter = InFlightLimiter(failover(primary, ticks, None))
        primary.down = True
        with pytest.raises(RateLimitStorageError) as refused:
            await limiter.acquire([Cap("customer", "c", 1)])
        assert refused.value.status == 503
        assert refused.value.extra["retry_after_seconds"] == 1

    async def test_fail_open_caps_this_process_alone_while_down(
        self, primary: Primary, ticks: Ticks, clock: FrozenClock
    ) -> None:
        limiter = InFlightLimiter(failover(primary, ticks, MemoryStorage(clock=clock)))
        primary.down = True
        cap = Cap("customer", "c", 1)
        lease = await limiter.acquire([cap])
        with pytest.raises(TooManyInFlight):
            await limiter.acquire([cap])
        await limiter.release(lease)  # given back in the fallback; the primary's failure logged
        await limiter.acquire([cap])
