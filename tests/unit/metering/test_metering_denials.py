"""DenialLog: refused calls noted in memory, written in the background; a flood beyond its
capacity and a failed write are dropped, counted and told to `watch_drops` listeners."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from tollhouse.clock import FrozenClock
from tollhouse.metering.denials import DenialLog
from tollhouse.storage import Database

DENIAL = {
    "customer_id": "cus_a",
    "key_id": "key_a",
    "plan": "free",
    "reason": "rate-limited",
    "model": "m",
    "route": "/v1/chat/completions",
}


class Spawner:
    """The runtime's `spawn`, kept to be awaited."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def __call__(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coro))

    async def drain(self) -> None:
        await asyncio.gather(*self.tasks)


async def test_denials_beyond_capacity_are_dropped_and_told(
    sqlite_db: Database, clock: FrozenClock
) -> None:
    spawn = Spawner()
    log = DenialLog(sqlite_db, clock=clock, spawn=spawn, capacity=2)
    told: list[int] = []
    log.watch_drops(told.append)

    for _ in range(5):
        log.note(**DENIAL)
    await spawn.drain()

    assert told == [1, 1, 1]
    assert log.dropped == 3


async def test_a_failed_write_drops_its_denials_and_tells(
    tmp_path: Path, clock: FrozenClock
) -> None:
    unmigrated = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    spawn = Spawner()
    log = DenialLog(unmigrated, clock=clock, spawn=spawn)
    told: list[int] = []
    log.watch_drops(told.append)
    try:
        log.note(**DENIAL)
        log.note(**DENIAL)
        await spawn.drain()
    finally:
        await unmigrated.dispose()

    assert sum(told) == 2 == log.dropped
