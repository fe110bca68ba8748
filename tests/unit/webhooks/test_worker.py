"""The worker's loop, as `serve` runs it: new events reach the receiver without anyone
calling a pass, at most `concurrency` attempts at a time, and stopping leaves no task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.support.receiver import WebhookReceiver
from tests.unit.webhooks.helpers import emit, register

from tollhouse.clock import FrozenClock
from tollhouse.storage import Database
from tollhouse.webhooks import WebhookWorker

WAIT_SECONDS = 20.0


async def until(condition: Callable[[], bool]) -> None:
    """Wait for background work to make `condition` true (fails after `WAIT_SECONDS`)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not condition():
            await asyncio.sleep(0.02)


async def test_loop_delivers_new_events(
    db: Database, clock: FrozenClock, receiver: WebhookReceiver
) -> None:
    await register(db, clock, receiver.url)
    worker = WebhookWorker(db, clock=clock, poll_seconds=0.05)
    await worker.start()
    try:
        events = [await emit(db, clock) for _ in range(3)]
        await until(lambda: len(receiver.effects) == 3)
    finally:
        await worker.stop()
    assert set(receiver.effects) == {event.id for event in events}


async def test_attempts_under_way_never_exceed_the_concurrency(
    db: Database, clock: FrozenClock
) -> None:
    slow = WebhookReceiver(hang_seconds=0.3)
    await slow.start()
    await register(db, clock, slow.url)
    worker = WebhookWorker(db, clock=clock, concurrency=2, poll_seconds=0.05)
    try:
        for _ in range(6):
            await emit(db, clock)
        await worker.start()
        await until(lambda: len(slow.effects) == 6)
    finally:
        await worker.stop()
        await slow.stop()
    assert slow.in_flight_max == 2


async def test_stop_cancels_the_loop_and_attempts(db: Database, clock: FrozenClock) -> None:
    hanging = WebhookReceiver(hang_seconds=1.5)
    await hanging.start()
    await register(db, clock, hanging.url)
    worker = WebhookWorker(db, clock=clock, poll_seconds=0.05)
    try:
        await emit(db, clock)
        await worker.start()
        await until(lambda: hanging.in_flight_max == 1)
        await worker.stop()
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("webhooks.")] == []
        await worker.stop()  # twice is fine
    finally:
        await hanging.stop()
