"""Four OS processes, each with its own `Ledger`, hammering one wallet on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from sqlalchemy import func, select

import tollhouse
from tollhouse.clock import SystemClock
from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.ledger.models import AccountKind, HoldStatus, accounts_table, holds_table
from tollhouse.storage import Database

WORKER = Path(__file__).with_name("ledger_worker.py")
SOURCE_ROOT = Path(tollhouse.__file__).resolve().parents[1]
PROCESSES = 4
PAIRS_PER_PROCESS = 400
CONCURRENCY = 32
INITIAL_GRANT = 10_000
OVERDRAFT_LIMIT = 1_000


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
            str(seed),
            str(PAIRS_PER_PROCESS),
            str(CONCURRENCY),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for seed in range(PROCESSES)
    ]
    for worker in workers:  # all connected before any starts
        assert worker.stdout is not None
        assert (await asyncio.wait_for(worker.stdout.readline(), 60)).strip() == b"ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(b"go\n")
        await worker.stdin.drain()
    outputs = await asyncio.wait_for(
        asyncio.gather(*(worker.communicate() for worker in workers)), 180
    )
    assert [worker.returncode for worker in workers] == [0] * PROCESSES
    return [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]


async def test_four_processes_never_overdraw_one_wallet(postgres_db: Database) -> None:
    async with Ledger(postgres_db, clock=SystemClock()) as ledger:
        await ledger.grant("cus_wallet", INITIAL_GRANT, idempotency_key="initial")
        await ledger.set_overdraft_limit("cus_wallet", OVERDRAFT_LIMIT)

    results = await run_workers(postgres_db.url)

    a, h = accounts_table.c, holds_table.c
    async with postgres_db.sessions() as session:
        wallet = await ledger_service.balance(session, "cus_wallet", now=SystemClock().now())
        lowest = dict(
            (
                await session.execute(
                    select(a.kind, func.min(a.balance - a.lower_bound))
                    .where(a.customer_id == "cus_wallet")
                    .group_by(a.kind)
                )
            ).all()
        )
        captured = await session.scalar(select(func.sum(h.captured_amount)))
        still_open = await session.scalar(
            select(func.count()).where(h.status == HoldStatus.OPEN.value)
        )
        problems = await ledger_service.check_invariants(session)

    granted = INITIAL_GRANT + sum(r["granted"] for r in results)
    assert problems == []
    assert still_open == 0
    assert all(margin >= 0 for margin in lowest.values())  # no account below its bound
    assert lowest[AccountKind.GRANT] >= 0
    assert wallet.overdraft_used_micros <= OVERDRAFT_LIMIT
    assert captured == sum(r["captured"] for r in results)
    assert wallet.available_micros + captured == granted + wallet.overdraft_used_micros
    assert sum(r["refused"] for r in results) > 0  # the wallet really ran dry
    assert sum(r["ops"] for r in results) > sum(r["batches"] for r in results)  # grouped
