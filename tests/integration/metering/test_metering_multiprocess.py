"""Several OS processes recording overlapping usage events into one PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from sqlalchemy import func, select

import tollhouse
from tollhouse.metering import UsageEvent
from tollhouse.storage import Database

WORKER = Path(__file__).with_name("metering_worker.py")
SOURCE_ROOT = Path(tollhouse.__file__).resolve().parents[1]

# (first, last) event numbers per process: neighbours overlap by 300 ids.
RANGES = [(0, 600), (300, 900), (600, 1200)]
UNIQUE_IDS = 1200 * 2  # e0..e1199 for each of two customers
# each worker sends its range for both customers plus a quarter of those again (repeats)
SENT = sum(2 * (last - first) + 2 * (last - first) // 4 for first, last in RANGES)


async def run_workers(url: str) -> list[dict[str, int]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            url,
            str(first),
            str(last),
            str(seed),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for seed, (first, last) in enumerate(RANGES)
    ]
    for worker in workers:  # all connected before any starts
        assert worker.stdout is not None
        assert (await asyncio.wait_for(worker.stdout.readline(), 60)).strip() == b"ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(b"go\n")
        await worker.stdin.drain()
    outputs = await asyncio.wait_for(
        asyncio.gather(*(worker.communicate() for worker in workers)), 120
    )
    assert [worker.returncode for worker in workers] == [0, 0, 0]
    return [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]


async def test_three_processes_store_each_overlapping_id_exactly_once(
    postgres_db: Database,
) -> None:
    results = await run_workers(postgres_db.url)

    async with postgres_db.transaction() as session:
        rows = (
            await session.execute(
                select(UsageEvent.customer_id, UsageEvent.event_id, func.count()).group_by(
                    UsageEvent.customer_id, UsageEvent.event_id
                )
            )
        ).all()
        total = await session.scalar(select(func.sum(UsageEvent.value)))

    assert len(rows) == UNIQUE_IDS
    assert sum(r["accepted"] for r in results) == UNIQUE_IDS
    sent = sum(r["accepted"] + r["duplicates"] for r in results)
    assert sent == SENT
    assert sum(r["duplicates"] for r in results) == sent - UNIQUE_IDS
    assert total == 2 * sum(range(1200))  # every id stored with its own value
