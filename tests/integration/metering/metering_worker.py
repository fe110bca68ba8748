"""One OS process of the multi-process metering test (run as a script, not collected).

Usage: `python metering_worker.py DATABASE_URL FIRST LAST SEED`. Connects, prints `ready`,
waits for a line on stdin, then records events `e{FIRST}..e{LAST-1}` for two customers in
shuffled, concurrent calls of 1..25 events (ids repeated inside and across calls) and prints
one JSON line: `{"accepted": n, "duplicates": m, "batches": b}`.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from datetime import UTC, datetime

from tollhouse.clock import SystemClock
from tollhouse.metering import UsageEventIn, UsageRecorder
from tollhouse.storage import Database

CUSTOMERS = ("cus_a", "cus_b")


async def main(url: str, first: int, last: int, seed: int) -> None:
    rng = random.Random(seed)
    db = Database(url)
    recorder = UsageRecorder(db, clock=SystemClock(), max_batch=200)
    async with db.engine.connect():  # warm the pool before the start signal
        pass
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    occurred_at = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    events = [
        UsageEventIn(
            id=f"e{n}",
            customer_id=customer,
            meter="input_tokens",
            value=n,
            occurred_at=occurred_at,
        )
        for n in range(first, last)
        for customer in CUSTOMERS
    ]
    events += rng.sample(events, len(events) // 4)  # some ids twice in this process too
    rng.shuffle(events)
    calls: list[list[UsageEventIn]] = []
    while events:
        size = rng.randint(1, 25)
        calls.append(events[:size])
        events = events[size:]

    results = await asyncio.gather(*(recorder.record(call) for call in calls))
    await recorder.stop()
    await db.dispose()
    print(
        json.dumps(
            {
                "accepted": sum(r.accepted for r in results),
                "duplicates": sum(r.duplicates for r in results),
                "batches": recorder.stats.batches,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
