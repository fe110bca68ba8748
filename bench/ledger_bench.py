"""Ledger throughput on ONE wallet vs the store's single-row commit rate, same run, same load.

For each store (SQLite WAL synchronous=FULL in a temp dir; PostgreSQL in a temporary database):

1. `ledger`: `CONCURRENCY` asyncio tasks, each looping hold(1000 micros) -> capture(700) on one
   customer through `tollhouse.ledger.Ledger` (group commit). Counts pairs/s and per-op latency.
2. `raw/sqlalchemy`: the same tasks each committing `UPDATE bench_wallet SET balance = balance - 1
   WHERE id = 1 AND balance >= 1` in its own transaction through the same `Database`.
3. `raw/driver`: the same statement per transaction straight on the driver (asyncpg pools of
   `CONCURRENCY` and of 16 connections; one aiosqlite connection for SQLite, which has one
   writer anyway).
4. SQLite only, `ref`: blocking sqlite3 in one thread, no asyncio: the file's own commit
   ceiling, printed for reference (not the same concurrency, so not in the main ratio).

The ratio is ledger pairs/s over the best same-concurrency raw commits/s: > 1 means one wallet is
not capped at the store's single-row commit rate. A pair is two ops (a naive wallet commits
each). Prints machine info and checks the ledger's invariants after the run.

Usage: python bench/ledger_bench.py [--duration 10] [--concurrency 64] [--stores sqlite,postgres]
       [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import pstats
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy
from benchkit import percentile
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tollhouse.clock import SystemClock
from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.storage import Database
from tollhouse.storage.migrate import upgrade_async

HOLD_MICROS = 1_000
CAPTURE_MICROS = 700
WARMUP_SECONDS = 1.5
CUSTOMER = "cus_bench"


@dataclass
class Run:
    """One measured loop: units done (pairs or commits) and per-op latencies in seconds."""

    name: str
    units: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        return percentile(sorted(self.latencies), q) * 1000


async def measure(
    name: str, concurrency: int, duration: float, step: Callable[[list[float]], Awaitable[int]]
) -> Run:
    """Run `step` in `concurrency` loops; count what finishes inside the measured window."""
    run = Run(name)
    start = time.perf_counter()
    window_start = start + WARMUP_SECONDS
    window_end = window_start + duration

    async def loop() -> None:
        while True:
            now = time.perf_counter()
            if now >= window_end:
                return
            latencies: list[float] = []
            units = await step(latencies)
            done = time.perf_counter()
            if window_start <= now and done <= window_end:
                run.units += units
                run.latencies.extend(latencies)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    run.seconds = duration
    return run


async def bench_ledger(db: Database, concurrency: int, duration: float) -> Run:
    ledger = Ledger(db, clock=SystemClock())
    await ledger.start()
    await ledger.grant(CUSTOMER, 10**15, idempotency_key="bench")
    batches0, ops0 = ledger.batches, ledger.ops

    async def pair(latencies: list[float]) -> int:
        t0 = time.perf_counter()
        hold = await ledger.hold(CUSTOMER, HOLD_MICROS)
        t1 = time.perf_counter()
        await ledger.capture(hold.id, CAPTURE_MICROS)
        latencies += (t1 - t0, time.perf_counter() - t1)
        return 1

    run = await measure("ledger hold+capture", concurrency, duration, pair)
    await ledger.stop()
    batches, ops = ledger.batches - batches0, ledger.ops - ops0
    run.note = f"{batches} commits, {ops / max(batches, 1):.0f} ops/commit"
    async with db.sessions() as session:
        problems = await ledger_service.check_invariants(session)
    run.note += ", invariants " + ("ok" if not problems else f"BROKEN: {problems[:3]}")
    return run


RAW_UPDATE = "UPDATE bench_wallet SET balance = balance - 1 WHERE id = 1 AND balance >= 1"


async def prepare_raw(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(
            text("CREATE TABLE IF NOT EXISTS bench_wallet (id INTEGER PRIMARY KEY, balance BIGINT)")
        )
        await session.execute(text("DELETE FROM bench_wallet"))
        await session.execute(text("INSERT INTO bench_wallet VALUES (1, 1000000000000)"))


async def bench_raw_sqlalchemy(db: Database, concurrency: int, duration: float) -> Run:
    statement = text(RAW_UPDATE)

    async def commit(latencies: list[float]) -> int:
        t0 = time.perf_counter()
        async with db.transaction() as session:
            result = await session.execute(statement)
        latencies.append(time.perf_counter() - t0)
        return int(result.rowcount == 1)  # type: ignore[attr-defined]

    return await measure("raw UPDATE, SQLAlchemy", concurrency, duration, commit)


async def bench_raw_asyncpg(url: str, concurrency: int, duration: float, connections: int) -> Run:
    import asyncpg  # type: ignore[import-untyped]

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)
    assert pool is not None

    async def commit(latencies: list[float]) -> int:
        t0 = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            status = await conn.execute(RAW_UPDATE)
        latencies.append(time.perf_counter() - t0)
        return int(status == "UPDATE 1")

    try:
        return await measure(f"raw UPDATE, asyncpg x{connections}", concurrency, duration, commit)
    finally:
        await pool.close()


async def bench_raw_aiosqlite(path: Path, concurrency: int, duration: float) -> Run:
    import aiosqlite

    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    lock = asyncio.Lock()  # one connection: one transaction at a time

    async def commit(latencies: list[float]) -> int:
        t0 = time.perf_counter()
        async with lock:
            await conn.execute("BEGIN IMMEDIATE")
            cursor = await conn.execute(RAW_UPDATE)
            await conn.execute("COMMIT")
        latencies.append(time.perf_counter() - t0)
        return int(cursor.rowcount == 1)

    try:
        return await measure("raw UPDATE, aiosqlite", concurrency, duration, commit)
    finally:
        await conn.close()


def sqlite_reference(path: Path, duration: float) -> Run:
    """Blocking sqlite3, one thread, no asyncio: the store's own single-row commit ceiling."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    run = Run("ref: sqlite3 sync, 1 thread", note="not the same concurrency: reference only")
    end = time.perf_counter() + duration
    while (start := time.perf_counter()) < end:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(RAW_UPDATE)
        conn.execute("COMMIT")
        run.latencies.append(time.perf_counter() - start)
        run.units += 1
    run.seconds = duration
    conn.close()
    return run


def report(store: str, runs: list[Run], extra: str) -> None:
    ledger, raws = runs[0], [r for r in runs[1:] if not r.name.startswith("ref:")]
    best_raw = max(raws, key=lambda r: r.rate)
    print(f"\n== {store} ({extra})")
    print(f"{'measure':<28}{'per second':>14}{'p50 ms':>10}{'p99 ms':>10}  note")
    for run in runs:
        unit = "pairs" if run is ledger else "commits"
        print(
            f"{run.name:<28}{run.rate:>10,.0f} {unit:<4}{run.percentile(0.5):>9.2f}"
            f"{run.percentile(0.99):>10.2f}  {run.note}"
        )
    print(
        f"ratio ledger pairs/s / best raw commits/s ({best_raw.name}): "
        f"{ledger.rate / best_raw.rate:.2f}   (ledger ops/s = {2 * ledger.rate:,.0f})"
    )
    for ref in (r for r in runs if r.name.startswith("ref:")):
        print(f"ratio ledger pairs/s / {ref.name}: {ledger.rate / ref.rate:.2f}")


async def run_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        path = Path(tmp) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade_async(url)
        db = Database(url)
        try:
            runs = [await bench_ledger(db, args.concurrency, args.duration)]
            await prepare_raw(db)
            runs.append(await bench_raw_sqlalchemy(db, args.concurrency, args.duration))
        finally:
            await db.dispose()
        runs.append(await bench_raw_aiosqlite(path, args.concurrency, args.duration))
        runs.append(await asyncio.to_thread(sqlite_reference, path, args.duration))
        report("SQLite", runs, f"WAL, synchronous=FULL, sqlite {sqlite3.sqlite_version}")


async def run_postgres(args: argparse.Namespace) -> None:
    admin = create_async_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    name = f"ledger_bench_{secrets.token_hex(4)}"
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
        version = (await conn.execute(text("SHOW server_version"))).scalar()
        sync = (await conn.execute(text("SHOW synchronous_commit"))).scalar()
    url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade_async(url)
        db = Database(url)
        try:
            runs = [await bench_ledger(db, args.concurrency, args.duration)]
            await prepare_raw(db)
            runs.append(await bench_raw_sqlalchemy(db, args.concurrency, args.duration))
        finally:
            await db.dispose()
        for connections in (args.concurrency, 16):
            runs.append(await bench_raw_asyncpg(url, args.concurrency, args.duration, connections))
        report(
            "PostgreSQL", runs, f"server {version}, synchronous_commit={sync}, Database pool 20+10"
        )
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def machine_info() -> str:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"nproc {cpus}, CPU {model}, Python {platform.python_version()}, "
        f"SQLAlchemy {sqlalchemy.__version__}, {platform.system()} {platform.release()}"
    )


async def main(args: argparse.Namespace) -> None:
    print("ledger_bench:", machine_info())
    print(
        f"{args.concurrency} concurrent tasks, {args.duration:g} s measured after "
        f"{WARMUP_SECONDS:g} s warm-up; pair = hold {HOLD_MICROS} + capture {CAPTURE_MICROS}"
    )
    stores = set(args.stores.split(","))
    if "sqlite" in stores:
        await run_sqlite(args)
    if "postgres" in stores:
        await run_postgres(args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument(
        "--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--profile", help="write cProfile stats of the whole run to this file")
    arguments = parser.parse_args()
    if arguments.profile:
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, main(arguments))
        profiler.dump_stats(arguments.profile)
        pstats.Stats(arguments.profile).sort_stats("cumulative").print_stats(25)
    else:
        asyncio.run(main(arguments))
