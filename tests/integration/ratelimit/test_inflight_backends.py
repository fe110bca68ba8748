"""In-flight slots (`InFlightLimiter`), one test body per scenario, on memory:// and redis://.

Memory runs on the frozen clock (`advance` moves it); Redis on the server's clock (`advance`
sleeps), with leases short enough to pass in a test. A 100-task burst checks that the check
and the take are one atomic step on each backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.ratelimit import Cap, InFlightLimiter, TooManyInFlight, storage_from_url

LEASE_SECONDS = 0.5
CAP = Cap("customer", "cus_1", 3)


@dataclass
class Backend:
    limiter: InFlightLimiter
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
def storage_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
async def backend(storage_url: str, clock: FrozenClock) -> AsyncIterator[Backend]:
    storage = storage_from_url(storage_url, clock=clock)

    async def advance(seconds: float) -> None:
        if storage_url == "memory://":
            clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    yield Backend(InFlightLimiter(storage, lease_seconds=LEASE_SECONDS), advance)
    await storage.close()


async def taken(limiter: InFlightLimiter, caps: list[Cap]) -> bool:
    try:
        await limiter.acquire(caps)
    except TooManyInFlight:
        return False
    return True


class TestSlots:
    async def test_100_concurrent_acquires_take_exactly_the_cap(self, backend: Backend) -> None:
        results = await asyncio.gather(*(taken(backend.limiter, [CAP]) for _ in range(100)))
        assert results.count(True) == CAP.limit

    async def test_a_refusal_takes_nothing_under_the_other_caps(self, backend: Backend) -> None:
        key_cap, customer_cap = Cap("api-key", "key_1", 2), Cap("customer", "cus_2", 1)
        await backend.limiter.acquire([customer_cap])
        assert not await taken(backend.limiter, [key_cap, customer_cap])
        assert await taken(backend.limiter, [key_cap])
        assert await taken(backend.limiter, [key_cap])  # both of the key's slots were free

    async def test_release_frees_the_slot_at_once(self, backend: Backend) -> None:
        leases = [await backend.limiter.acquire([CAP]) for _ in range(CAP.limit)]
        assert not await taken(backend.limiter, [CAP])
        await backend.limiter.release(leases[0])
        assert await taken(backend.limiter, [CAP])

    async def test_an_unrenewed_slot_frees_itself_after_its_lease(self, backend: Backend) -> None:
        dead = InFlightLimiter(backend.limiter.storage, lease_seconds=LEASE_SECONDS)
        for _ in range(CAP.limit):  # another process's slots; it dies: nothing renews them
            await dead.acquire([CAP])
        assert not await taken(backend.limiter, [CAP])
        await backend.advance(LEASE_SECONDS * 1.5)
        assert await taken(backend.limiter, [CAP])

    async def test_a_renewed_slot_outlives_its_lease(self, backend: Backend) -> None:
        for _ in range(CAP.limit):
            await backend.limiter.acquire([CAP])
        for _ in range(4):  # two leases long, renewed every half lease
            await backend.advance(LEASE_SECONDS / 2)
            await backend.limiter.renew()
        assert not await taken(backend.limiter, [CAP])
