"""Usage events ingested per second through `POST /v1/usage/events`, into one PostgreSQL.

    .venv/bin/python bench/usage_bench.py [--duration 15] [--clients 8] [--batch 500]
        [--workers 1] [--pg-port 5432]

Goal (issue 23): at least 10,000 events/s into one PostgreSQL, idempotent.

It creates a fresh PostgreSQL database (dropped afterwards), sets tollhouse up with its CLI
(catalog, `db upgrade`, a customer and its key), serves it (`serve --workers N`), then:

1. **tollhouse, new events**: `--clients` concurrent clients each post batches of `--batch`
   new events (unique ids) for `--duration` seconds, each batch sent after the previous one
   was answered (closed loop). Events/s = events acknowledged (`accepted`) / elapsed.
2. **tollhouse, replays**: the same batches again, as a client retrying after lost answers
   does: every event must come back as a duplicate (`accepted` 0), and nothing more is stored.
3. **baseline, PostgreSQL alone**: the same rows, the same batch size and concurrency, the
   same idempotent statement (`INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`)
   sent with asyncpg straight into a copy of the `usage_events` table: what one PostgreSQL
   does without HTTP, JSON and tollhouse in between. tollhouse / baseline is the ratio.

Afterwards it checks that the table holds exactly the events acknowledged (a count per
distinct id). Only 127.0.0.1 is contacted; every process started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aiohttp
import asyncpg
import benchkit
from gateway_bench import (
    BENCH_PLAN,
    CATALOG_YAML,
    HOST,
    TargetFailed,
    clean_env,
    run_cli,
    tollhouse_command,
    wait_or_fail,
)

BENCH = Path(__file__).resolve().parent
REPO_PYTHON = BENCH.parent / ".venv" / "bin" / "python"
PORT = 9210
GOAL_EVENTS_PER_S = 10_000
METER = "api_calls"

BASELINE_INSERT = (
    "INSERT INTO bench_usage_events (event_id, customer_id, meter, value, occurred_at, "
    "recorded_at, key_id, model, session_id, upstream, properties) "
    "SELECT i, c, m, v, o, now(), NULL, NULL, NULL, NULL, '{}'::json FROM unnest("
    "$1::varchar[], $2::varchar[], $3::varchar[], $4::bigint[], $5::timestamptz[]) "
    "AS u(i, c, m, v, o) ON CONFLICT (customer_id, event_id) DO NOTHING RETURNING event_id"
)


@dataclass
class Phase:
    name: str
    events: int
    accepted: int
    seconds: float
    errors: int

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def batches(run: str, client: int, batch: int) -> Any:
    """Endless batches of new events for one client: ids `<run>-<client>-<n>`."""
    n = 0
    while True:
        yield [{"id": f"{run}-{client}-{n + i}", "meter": METER, "value": 1} for i in range(batch)]
        n += batch


async def post_load(
    url: str, key: str, args: argparse.Namespace, run: str
) -> tuple[Phase, list[list[dict[str, Any]]]]:
    """Phase 1: closed-loop clients posting new batches for `args.duration` seconds."""
    sent: list[list[dict[str, Any]]] = []
    accepted = errors = 0
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.perf_counter() + args.duration

    async def client(session: aiohttp.ClientSession, number: int) -> None:
        nonlocal accepted, errors
        for events in batches(run, number, args.batch):
            if time.perf_counter() >= deadline:
                return
            async with session.post(url, json={"events": events}) as response:
                body = await response.read()
            if response.status == 200:
                accepted += json.loads(body)["accepted"]
                sent.append(events)
            else:
                errors += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(*(client(session, n) for n in range(args.clients)))
    elapsed = time.perf_counter() - started
    events = sum(len(b) for b in sent)
    return Phase("tollhouse, new events", events, accepted, elapsed, errors), sent


async def replay(url: str, key: str, args: argparse.Namespace, sent: list[Any]) -> Phase:
    """Phase 2: every acknowledged batch sent again by the same number of clients."""
    queue = list(sent)
    accepted = errors = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal accepted, errors
        while queue:
            events = queue.pop()
            async with session.post(url, json={"events": events}) as response:
                body = await response.read()
            if response.status == 200:
                accepted += json.loads(body)["accepted"]
            else:
                errors += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
        await asyncio.gather(*(client(session) for _ in range(args.clients)))
    events = sum(len(b) for b in sent)
    return Phase("tollhouse, replays", events, accepted, time.perf_counter() - started, errors)


async def baseline(dsn: str, customer: str, args: argparse.Namespace, run: str) -> Phase:
    """Phase 3: the same statement shape straight into PostgreSQL with asyncpg."""
    setup = await asyncpg.connect(dsn)
    await setup.execute(
        "CREATE TABLE bench_usage_events (LIKE usage_events INCLUDING DEFAULTS INCLUDING INDEXES)"
    )
    await setup.close()
    deadline = time.perf_counter() + args.duration
    events = accepted = 0

    async def client(number: int) -> None:
        nonlocal events, accepted
        connection = await asyncpg.connect(dsn)
        try:
            for batch in batches(run + "-pg", number, args.batch):
                if time.perf_counter() >= deadline:
                    return
                now = datetime.now(UTC)
                rows = await connection.fetch(
                    BASELINE_INSERT,
                    [e["id"] for e in batch],
                    [customer] * len(batch),
                    [METER] * len(batch),
                    [1] * len(batch),
                    [now] * len(batch),
                )
                events += len(batch)
                accepted += len(rows)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(args.clients)))
    return Phase("PostgreSQL alone (asyncpg)", events, accepted, time.perf_counter() - started, 0)


async def stored(dsn: str, customer: str) -> tuple[int, int]:
    """(rows, distinct ids) of the customer's usage events."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT count(*), count(DISTINCT event_id) FROM usage_events WHERE customer_id = $1",
            customer,
        )
        return int(row[0]), int(row[1])
    finally:
        await connection.close()


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=15, help="seconds per phase (15)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    p.add_argument("--batch", type=int, default=500, help="events per request (500, max 1000)")
    p.add_argument("--workers", type=int, default=1, help="`serve --workers` (1)")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--python", type=Path, default=REPO_PYTHON)
    args = p.parse_args()
    if not 1 <= args.batch <= 1000 or args.clients < 1 or args.workers < 1:
        p.error("--batch must be 1..1000; --clients and --workers positive")
    return asyncio.run(run(args))


async def run(args: argparse.Namespace) -> int:
    pg = ["-h", HOST, "-p", str(args.pg_port), "-U", args.pg_user]
    dbname = f"tollhouse_usage_bench_{os.getpid()}"
    dsn = f"postgresql://{args.pg_user}@{HOST}:{args.pg_port}/{dbname}"
    subprocess.run(["createdb", *pg, dbname], check=True, capture_output=True, timeout=60)
    tmp = Path(tempfile.mkdtemp(prefix="usage-bench-"))
    proc: benchkit.Proc | None = None
    try:
        cli, cli_env = tollhouse_command(args.python)
        catalog = tmp / "catalog.yaml"
        catalog.write_text(CATALOG_YAML)
        env = clean_env(
            **cli_env,
            TOLLHOUSE_CATALOG=str(catalog),
            TOLLHOUSE_DATABASE_URL=f"postgresql+asyncpg://{args.pg_user}@{HOST}:{args.pg_port}/{dbname}",
        )
        run_cli(cli, ["db", "upgrade"], env, tmp)
        customer = run_cli(
            cli,
            ["customers", "create", "--name", "bench", "--plan", BENCH_PLAN, "--json"],
            env,
            tmp,
        )["id"]
        key = run_cli(
            cli, ["keys", "create", "--customer", customer, "--name", "bench", "--json"], env, tmp
        )["key"]
        serve = ["serve", "--host", HOST, "--port", str(PORT), "--workers", str(args.workers)]
        proc = benchkit.Proc("tollhouse", cli + serve, env=env, cwd=tmp, log_dir=tmp)
        wait_or_fail(proc, f"http://{HOST}:{PORT}/healthz", 90)
        url = f"http://{HOST}:{PORT}/v1/usage/events"
        run_id = uuid.uuid4().hex[:8]
        cpu0 = benchkit.group_cpu_seconds(proc.pgid)
        new, sent = await post_load(url, key, args, run_id)
        server_cpu = benchkit.group_cpu_seconds(proc.pgid) - cpu0
        replays = await replay(url, key, args, sent)
        rows, distinct = await stored(dsn, customer)
        proc.stop()
        proc = None
        alone = await baseline(dsn, customer, args, run_id)
    except TargetFailed as exc:
        print(f"FAILED: {exc}\n{exc.output}", file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            proc.stop()
        subprocess.run(["dropdb", *pg, "--force", dbname], capture_output=True, timeout=60)

    machine = benchkit.machine_info(args.python)
    print(
        f"machine: {machine['nproc']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB,"
        f" load {machine['load_average']}; python {machine['server_python'].get('python')}"
    )
    print(
        f"load: {args.clients} clients, {args.batch} events per request, {args.duration:g} s per "
        f"phase, serve --workers {args.workers}, PostgreSQL on {HOST}:{args.pg_port}"
    )
    print(f"{'phase':<30}{'events':>10}{'accepted':>10}{'errors':>8}{'events/s':>12}")
    for phase in (new, replays, alone):
        print(
            f"{phase.name:<30}{phase.events:>10,}{phase.accepted:>10,}{phase.errors:>8}"
            f"{phase.per_second:>12,.0f}"
        )
    per_1k = server_cpu * 1_000_000 / new.events if new.events else 0.0
    print(f"tollhouse server CPU: {per_1k:.1f} ms per 1,000 events")
    ratio = new.per_second / alone.per_second * 100 if alone.per_second else 0.0
    print(f"tollhouse = {ratio:.0f}% of PostgreSQL alone")
    goal = "met" if new.per_second >= GOAL_EVENTS_PER_S else "NOT met"
    print(f"goal >= {GOAL_EVENTS_PER_S:,} events/s: {goal}")
    exact = rows == distinct == new.accepted == new.events and replays.accepted == 0
    print(
        f"stored: {rows:,} rows, {distinct:,} distinct ids; acknowledged {new.accepted:,}; "
        f"replays accepted {replays.accepted}: {'exact' if exact else 'NOT EXACT'}"
    )
    return 0 if exact and not (new.errors or replays.errors) else 1


if __name__ == "__main__":
    sys.exit(main())
