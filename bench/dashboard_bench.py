"""Dashboard page latency against the issue's target (a page answers in under 100 ms) with
1,000 customers and 100,000 usage events in the store.

Per store (SQLite in a temp dir; PostgreSQL in a temporary database when it is reachable):

1. Seed, in-process through tollhouse's own services: the built-in catalog, `--customers`
   customers (subscribed to the default plan) with one API key each (60% used in the last
   7 days) and a grant, `--events` usage events (requests of 3 meters each: `api_calls`,
   `input_tokens`, `output_tokens`) over the last 90 days on the catalog's models, a hold
   and capture in the ledger per request (real ledger movements, dated on the request's
   day), `--denials` refused calls, an operator and a member user. Customers are skewed (a
   few busy ones): the busiest one's page is the one timed.
2. Start `tollhouse serve` on that store as a subprocess, sign in as the operator and as the
   member (as a browser does: login form, CSRF token, cookie).
3. Time `--requests` sequential GETs of each page after `--warmup` untimed ones: `/health`
   (the baseline: same server, same client, no page), the portal overview (member), the
   console's customers list, the busiest customer's page, analytics over 30 and 90 days.
   Prints p50/p99 per page, each p50 as a ratio of the baseline's, and whether p99 is under
   `TARGET_MS`, with the machine (CPU count and model).

Usage: .venv/bin/python bench/dashboard_bench.py [--requests 200] [--stores sqlite,postgres]
       [--customers 1000] [--events 100000] [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from benchkit import Proc, machine_info, percentile, port_in_use, wait_ready
from sqlalchemy import insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tollhouse.catalog import load_catalog
from tollhouse.clock import FrozenClock
from tollhouse.config import Settings
from tollhouse.keys import service as keys
from tollhouse.keys.models import ApiKey
from tollhouse.ledger import Ledger
from tollhouse.metering.models import Denial, UsageEvent
from tollhouse.server.bootstrap import bootstrap
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions
from tollhouse.users import Role
from tollhouse.users import service as users

TARGET_MS = 100.0
"""The issue's budget for one page."""
PASSWORD = "bench password 1"
DAYS = 90
ROOT = Path(__file__).resolve().parent.parent
PORT = 9310


async def seed(url: str, customers: int, events: int, denials: int) -> str:
    """Fill the store at `url`; returns the busiest customer's id."""
    catalog = load_catalog(None)
    settings = Settings(database_url=url, catalog=None, _env_file=None)  # type: ignore[call-arg]
    now = datetime.now(UTC)
    clock = FrozenClock(now - timedelta(days=DAYS))
    await bootstrap(settings, clock=clock)
    db = Database(url)
    rng = random.Random(21)
    models = sorted(catalog.models)[:3]
    ids: list[str] = []
    key_ids: list[str] = []
    async with db.transaction() as session:
        for n in range(customers):
            made = await subscriptions.create_customer(
                session, name=f"Customer {n:04d}", email=f"c{n}@example.com",
                catalog=catalog, clock=clock,
            )  # fmt: skip
            ids.append(made.id)
            issued = await keys.create_key(
                session, customer_id=made.id, name="bench", issuer=None, secret=b"bench",
                clock=clock,
            )  # fmt: skip
            key_ids.append(issued.key.id)
        await users.create_user(
            session, email="op@example.com", role=Role.OPERATOR, password=PASSWORD, clock=clock
        )
        await users.create_user(
            session, email="member@example.com", role=Role.MEMBER, customer_id=ids[0],
            password=PASSWORD, clock=clock,
        )  # fmt: skip
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id.in_(key_ids[: customers * 6 // 10]))
            .values(last_used_at=now - timedelta(days=1))
        )
    weights = [1 / (rank + 1) for rank in range(customers)]  # Zipf-like: customer 0 is busiest
    requests = events // 3
    owners = rng.choices(range(customers), weights=weights, k=requests)
    moments = sorted(now - timedelta(seconds=rng.uniform(0, DAYS * 86_400)) for _ in owners)
    rows = []
    for n, (owner, moment) in enumerate(zip(owners, moments, strict=True)):
        model = models[n % len(models)]
        for meter, value in (("api_calls", 1), ("input_tokens", 400), ("output_tokens", 150)):
            rows.append(
                {"event_id": f"e{n}-{meter}", "customer_id": ids[owner], "meter": meter,
                 "value": value, "occurred_at": moment, "recorded_at": moment,
                 "key_id": key_ids[owner], "model": model, "properties": {}}
            )  # fmt: skip
    async with db.transaction() as session:
        for start in range(0, len(rows), 5_000):
            await session.execute(insert(UsageEvent), rows[start : start + 5_000])
        await session.execute(
            insert(Denial),
            [
                {"customer_id": ids[rng.randrange(customers)], "key_id": None,
                 "plan": catalog.default_plan, "model": models[0], "route": "/v1/chat/completions",
                 "reason": rng.choice(["rate-limited", "quota-exceeded", "insufficient-credit"]),
                 "occurred_at": now - timedelta(seconds=rng.uniform(0, DAYS * 86_400))}
                for _ in range(denials)
            ],
        )  # fmt: skip
    async with Ledger(db, clock=clock) as ledger:
        await asyncio.gather(*(ledger.grant(c, 1_000_000_000, idempotency_key="seed") for c in ids))
        by_day: dict[int, list[str]] = {}
        for owner, moment in zip(owners, moments, strict=True):
            by_day.setdefault((now - moment).days, []).append(ids[owner])
        for ago in sorted(by_day, reverse=True):
            clock.set(now - timedelta(days=ago))
            await asyncio.gather(*(_charge(ledger, customer) for customer in by_day[ago]))
    await db.dispose()
    return ids[0]


async def _charge(ledger: Ledger, customer_id: str) -> None:
    hold = await ledger.hold(customer_id, 1_000)
    await ledger.capture(hold.id, 700)


class Client:
    """A signed-in dashboard user (cookies kept by httpx; the server runs with
    `TOLLHOUSE_SECURE_COOKIES=false` so they travel over plain HTTP)."""

    def __init__(self, base: str, email: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        form = self.http.get("/dashboard/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None, form.text[:500]
        answer = self.http.post(
            "/dashboard/login",
            data={"email": email, "password": PASSWORD, "login_token": token.group(1)},
        )
        assert answer.status_code == 303, (answer.status_code, answer.text[:500])

    def time(self, path: str, count: int, warmup: int) -> list[float]:
        """Milliseconds of `count` sequential GETs of `path` (after `warmup` untimed)."""
        took = []
        for n in range(warmup + count):
            t0 = time.perf_counter()
            answer = self.http.get(path)
            elapsed = (time.perf_counter() - t0) * 1000
            if answer.status_code != 200:
                raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
            if n >= warmup:
                took.append(elapsed)
        return sorted(took)


def measure(store: str, url: str, args: argparse.Namespace, busiest: str, logs: Path) -> bool:
    """Serve `url`, time the pages; print the table. True when every page met the target."""
    if port_in_use(args.port):
        raise SystemExit(f"port {args.port} is in use")
    env = {**os.environ, "TOLLHOUSE_DATABASE_URL": url, "TOLLHOUSE_SECURE_COOKIES": "false",
           "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    env.pop("TOLLHOUSE_CATALOG", None)
    argv = [sys.executable, "-m", "tollhouse.cli.main", "serve", "--host", "127.0.0.1",
            "--port", str(args.port)]  # fmt: skip
    proc = Proc(f"tollhouse-{store}", argv, env=env, cwd=logs, log_dir=logs)
    try:
        base = f"http://127.0.0.1:{args.port}"
        ready, why = wait_ready(proc, base + "/health", 60)
        if not ready:
            raise SystemExit(f"tollhouse did not start: {why}\n{proc.tail()}")
        operator, member = Client(base, "op@example.com"), Client(base, "member@example.com")
        pages = [
            ("GET /health (baseline)", operator, "/health"),
            ("portal overview", member, "/dashboard/portal"),
            ("console customers", operator, "/dashboard/console"),
            ("console customer page", operator, f"/dashboard/console/customers/{busiest}"),
            ("analytics 30 days", operator, "/dashboard/console/analytics?days=30"),
            ("analytics 90 days", operator, "/dashboard/console/analytics?days=90"),
        ]
        print(f"\n{store}: {args.requests} sequential GETs per page after {args.warmup} untimed")
        print(f"{'page':28} {'p50 ms':>8} {'p99 ms':>8} {'x baseline':>11}  under {TARGET_MS:g} ms")
        baseline = 0.0
        met = True
        for name, client, path in pages:
            took = client.time(path, args.requests, args.warmup)
            p50, p99 = percentile(took, 0.5), percentile(took, 0.99)
            baseline = baseline or p50
            ok = p99 < TARGET_MS
            met = met and ok
            print(
                f"{name:28} {p50:8.1f} {p99:8.1f} {p50 / baseline:11.1f}  {'yes' if ok else 'NO'}"
            )
        return met
    finally:
        proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--denials", type=int, default=5_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument(
        "--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    info = machine_info(Path(sys.executable))
    print(f"machine: {info['cpu_count']} CPUs, {info['cpu_model']}, {info['memory_gib']} GiB, "
          f"load {info['load_average']}, Python {info['harness_python']}")  # fmt: skip
    print(f"store: {args.customers} customers, {args.events} usage events "
          f"({args.events // 3} requests x 3 meters) over {DAYS} days, a hold and a capture "
          f"per request, {args.denials} denials")  # fmt: skip
    met = True
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        directory = Path(tmp)
        for store in args.stores.split(","):
            if store == "sqlite":
                url = f"sqlite+aiosqlite:///{directory / 'dashboard.db'}"
                t0 = time.monotonic()
                busiest = asyncio.run(seed(url, args.customers, args.events, args.denials))
                print(f"\nsqlite: seeded in {time.monotonic() - t0:.0f} s")
                met = measure(store, url, args, busiest, directory / "logs") and met
            elif store == "postgres":
                met = run_postgres(args, directory) and met
            else:
                raise SystemExit(f"unknown store {store!r}")
    raise SystemExit(0 if met else 1)


def run_postgres(args: argparse.Namespace, directory: Path) -> bool:
    """The PostgreSQL run in a temporary database (dropped after); skipped, with a note, when
    PostgreSQL does not answer."""
    name = f"dashboard_bench_{secrets.token_hex(4)}"

    async def admin(statement: str) -> None:
        engine = create_async_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except OSError as error:
        print(f"\npostgres: skipped, {args.postgres_url} does not answer ({error})")
        return True
    url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        t0 = time.monotonic()
        busiest = asyncio.run(seed(url, args.customers, args.events, args.denials))
        print(f"\npostgres: seeded in {time.monotonic() - t0:.0f} s")
        return measure("postgres", url, args, busiest, directory / "logs")
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
