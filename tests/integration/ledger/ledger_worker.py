"""One OS process of the multi-process ledger test (run as a script, not collected).

Usage: `python ledger_worker.py DATABASE_URL SEED PAIRS CONCURRENCY`. Opens its own `Ledger`,
prints `ready`, waits for a line on stdin, then runs PAIRS hold-then-settle sequences on the one
wallet `cus_wallet` from CONCURRENCY tasks: hold 1..50 micros (every other hold answered before
its commit, as the gateway's are), then capture a random part (or void one time in five). Process 0 also tops the wallet up five times along the way. Prints one
JSON line: `{"holds": n, "refused": m, "captured": micros, "granted": micros, "batches": b,
"ops": o}`.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from tollhouse.clock import SystemClock
from tollhouse.ledger import InsufficientCredit, Ledger
from tollhouse.storage import Database

CUSTOMER = "cus_wallet"
TOP_UP_MICROS = 500


async def main(url: str, seed: int, pairs: int, concurrency: int) -> None:
    rng = random.Random(seed)
    db = Database(url)
    ledger = Ledger(db, clock=SystemClock(), max_batch=256)
    await ledger.start()
    async with db.engine.connect():  # warm the pool before the start signal
        pass
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    totals = {"holds": 0, "refused": 0, "captured": 0, "granted": 0}
    queue = list(range(pairs))

    async def one(n: int) -> None:
        amount = rng.randint(1, 50)
        try:
            hold = await ledger.hold(CUSTOMER, amount, idempotency_key=f"p{seed}-{n}")
        except InsufficientCredit:
            totals["refused"] += 1
            return
        totals["holds"] += 1
        if rng.random() < 0.2:
            await ledger.void(hold.id)
        else:
            part = rng.randint(0, amount)
            await ledger.capture(hold.id, part)
            totals["captured"] += part

    async def task() -> None:
        while queue:
            n = queue.pop()
            if seed == 0 and n % (pairs // 5) == 0:
                await ledger.grant(CUSTOMER, TOP_UP_MICROS, idempotency_key=f"top-up-{n}")
                totals["granted"] += TOP_UP_MICROS
            await one(n)

    await asyncio.gather(*(task() for _ in range(concurrency)))
    await ledger.stop()
    await db.dispose()
    print(json.dumps({**totals, "batches": ledger.batches, "ops": ledger.ops}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
