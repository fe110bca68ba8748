"""`SingleFlight`: concurrent loads of one key share one call, its result and its error."""

from __future__ import annotations

import asyncio

import pytest

from tollhouse.singleflight import SingleFlight


async def test_concurrent_callers_share_one_load_and_later_ones_load_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal calls
        calls += 1
        number = calls
        await release.wait()
        return number

    waiting = [asyncio.create_task(flight.run("cus_a", load)) for _ in range(50)]
    other = asyncio.create_task(flight.run("cus_b", load))
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [1] * 50
    assert await other == 2
    assert await flight.run("cus_a", load) == 3  # done: the next caller loads again


async def test_an_error_reaches_every_waiter_and_a_cancelled_waiter_cancels_nothing() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise RuntimeError("database down")

    first = asyncio.create_task(flight.run("k", failing))
    second = asyncio.create_task(flight.run("k", failing))
    third = asyncio.create_task(flight.run("k", failing))
    await asyncio.sleep(0)
    second.cancel()
    release.set()
    for task in (first, third):
        with pytest.raises(RuntimeError, match="database down"):
            await task
    with pytest.raises(asyncio.CancelledError):
        await second
