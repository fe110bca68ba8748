"""Redis and PostgreSQL fail under a steady load of two `tollhouse serve` processes.

Story: an operator runs two processes on one PostgreSQL and one Redis (servers of this
test's own, on free ports: never the shared ones), while clients keep calling the gateway,
`POST /v1/authorize` (then capturing the hold) and `POST /v1/usage/events`. Then:

- Redis is stopped, then started again (it comes back empty);
- Redis is paused with SIGSTOP (it accepts connections and never answers: a hang, not a
  refused connection), then resumed with SIGCONT;
- PostgreSQL is stopped in `fast` mode (clients disconnected, clean shutdown) or in
  `immediate` mode (a crash: recovery replays the WAL), kept down a few seconds, and started.

Throughout: no answer is a 500 or other 5xx than 503, none hangs (every call answers within
`CALL_BOUND_SECONDS`), and every 503 is problem+json with `Retry-After`. While Redis is down,
the configured policy holds: `fail-closed` answers rate-limited calls 503
`rate-limit-unavailable`, `fail-open` serves them. While PostgreSQL is down, calls that need it
answer 503 `database-unavailable` (usage events: `metering-unavailable` when the write
itself failed). Once the server is back, every call started 5 s later
succeeds (recovery without a restart of tollhouse). After the run, the ledger's invariants
hold, no hold is left open, and every usage event acknowledged with a 2xx is stored exactly
once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.test_multiprocess import SOURCE_ROOT, Server, launch, stop, wait_until_healthy
from tests.support.catalog import write_catalog
from tests.support.fault_checks import Books, read_books, sweep_later
from tests.support.postgres_server import PostgresServer, own_postgres
from tests.support.redis_server import RedisServer, own_redis
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.keys import generate_key

pytestmark = pytest.mark.load

CLIENTS = 6
"""Concurrent client loops, each calling one process after the other."""
WARM_SECONDS = 3.0
"""Load before the fault: every call must succeed."""
OUTAGE_SECONDS = 4.0
"""How long the server stays down (or paused)."""
RECOVERY_SECONDS = 5.0
"""Every call started this long after the server is back must succeed."""
AFTER_SECONDS = 9.0
"""Load after the server is back."""
CALL_BOUND_SECONDS = 20.0
"""No call may take longer, fault or not (a hang fails the test)."""
SETTLE_SECONDS = 30.0
"""Bound on waiting for the processes' settlements after the load."""
HOLD_EXPIRY_HOURS = 2
"""Past every hold's expiry (one hour by default)."""
TEXT_RPM = 1_000_000
"""Rate limits high enough never to refuse this load: every decision still goes to Redis."""


@dataclass
class Outcome:
    """One call of the load: what it was, when it started (monotonic), its answer."""

    op: str
    started: float
    seconds: float
    status: int | str
    """HTTP status, or the transport error's class name."""
    problem: str | None = None
    retry_after: str | None = None


@dataclass
class Load:
    """The load's record: every outcome, the usage event ids acknowledged, holds to settle."""

    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)
    uncaptured: list[tuple[str, str]] = field(default_factory=list)
    """(server URL, hold id) of holds authorized whose capture did not succeed."""
    answered_holds: set[str] = field(default_factory=set)
    """Ids of the holds the clients were told of (authorized, or a gateway call's)."""
    served_calls: set[str] = field(default_factory=set)
    """Request ids of the gateway calls answered 200: each must be recorded (`api_calls`)."""


@asynccontextmanager
async def two_processes(
    tmp_path: Path, upstream: FakeUpstream, pg: PostgresServer, redis: RedisServer, policy: str
) -> AsyncIterator[tuple[list[Server], str]]:
    """Two `serve` processes on `pg` and `redis` under `policy`; yields them and a customer's
    key (pro plan, $100 of credits). Their output is printed if the block fails."""
    operator_key = generate_key()
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLHOUSE_")}
    env.update(
        TOLLHOUSE_DATABASE_URL=pg.url,
        TOLLHOUSE_REDIS_URL=redis.url,
        TOLLHOUSE_REDIS_FAILURE_POLICY=policy,
        TOLLHOUSE_CATALOG=str(write_catalog(tmp_path, upstream.base_url, text_rpm=TEXT_RPM)),
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
        TOLLHOUSE_TEST_UPSTREAM_KEY="upstream-secret",
        TOLLHOUSE_SHUTDOWN_GRACE_SECONDS="10",
        PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    servers: list[Server] = []
    try:
        for number in range(2):
            servers.append(launch(f"server-{number + 1}", env, tmp_path))
            await wait_until_healthy(servers[-1])
        async with Api(servers[0].base_url, operator_key) as operator:
            customer = await operator.ok("POST", "/v1/customers", json={"name": "c", "plan": "pro"})
            await operator.ok(
                "POST",
                f"/v1/customers/{customer['id']}/credits/grants",
                json={"amount_micros": 100_000_000, "idempotency_key": "seed"},
            )
            key = await operator.ok("POST", f"/v1/customers/{customer['id']}/keys", json={})
        yield servers, key["key"]
    except BaseException:
        for server in servers:
            await stop(server)
            print(server.output())
        print(pg.output())
        raise
    finally:
        for server in servers:
            await stop(server)


async def run_load(
    servers: list[Server], key: str, load: Load, until: asyncio.Event, ids: itertools.count[int]
) -> None:
    """`CLIENTS` loops of gateway call, authorize + capture, usage events, round the two
    processes, until `until` is set."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(headers=headers, timeout=CALL_BOUND_SECONDS) as http:

        async def call(op: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
            started = time.monotonic()
            try:
                response = await http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                load.outcomes.append(
                    Outcome(op, started, time.monotonic() - started, type(exc).__name__)
                )
                return None
            problem = None
            if response.status_code >= 400:
                body = response.json()
                problem = body.get("type") or body.get("problem_type")
            load.outcomes.append(
                Outcome(
                    op,
                    started,
                    time.monotonic() - started,
                    response.status_code,
                    problem,
                    response.headers.get("Retry-After"),
                )
            )
            return response

        async def client(number: int) -> None:
            for turn in itertools.count():
                if until.is_set():
                    return
                base = servers[(number + turn) % len(servers)].base_url
                kind = (number + turn) % 3
                if kind == 0:
                    body = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}
                    answer = await call("chat", "POST", f"{base}/v1/chat/completions", json=body)
                    if answer is not None and answer.status_code == 200:
                        load.answered_holds.add(answer.headers["x-tollhouse-hold-id"])
                        load.served_calls.add(answer.headers["x-tollhouse-request-id"])
                elif kind == 1:
                    body = {
                        "model": "test-chat",
                        "usage": {"input_tokens": 100},
                        "idempotency_key": f"auth-{next(ids)}",
                    }
                    answer = await call("authorize", "POST", f"{base}/v1/authorize", json=body)
                    if answer is not None and answer.status_code == 200:
                        hold_id = answer.json()["hold"]["id"]
                        load.answered_holds.add(hold_id)
                        url = f"{base}/v1/holds/{hold_id}/capture"
                        captured = await call("capture", "POST", url, json={"amount_micros": 60})
                        if captured is None or captured.status_code != 200:
                            load.uncaptured.append((base, hold_id))
                else:
                    batch = [f"ev-{next(ids)}" for _ in range(5)]
                    events = [{"id": i, "meter": "api_calls", "value": 1} for i in batch]
                    answer = await call(
                        "events", "POST", f"{base}/v1/usage/events", json={"events": events}
                    )
                    if answer is not None and answer.is_success:
                        load.acknowledged.update(batch)

        await asyncio.gather(*(client(n) for n in range(CLIENTS)))


async def under_load(
    servers: list[Server], key: str, fault: Callable[[], Awaitable[None]],
    back: Callable[[], Awaitable[None]],
) -> tuple[Load, float, float]:  # fmt: skip
    """Run the load; after `WARM_SECONDS` call `fault()`, `OUTAGE_SECONDS` later `back()`;
    stop `AFTER_SECONDS` after `back()` returned. Returns the load and the monotonic times
    at which the fault started and the server was back."""
    load, done, ids = Load(), asyncio.Event(), itertools.count()
    running = asyncio.create_task(run_load(servers, key, load, done, ids))
    try:
        await asyncio.sleep(WARM_SECONDS)
        fault_at = time.monotonic()
        await fault()
        await asyncio.sleep(OUTAGE_SECONDS)
        await back()
        back_at = time.monotonic()
        await asyncio.sleep(AFTER_SECONDS)
    finally:
        done.set()
        await running
    return load, fault_at, back_at


def check_answers(load: Load, fault_at: float, back_at: float) -> Counter[tuple[str, Any, Any]]:
    """No 5xx but 503, no transport failure, no hang; 503s carry `Retry-After`; every call
    before the fault and from `RECOVERY_SECONDS` after the server is back succeeded. Returns
    the outcomes during the outage, counted by (op, status, problem)."""
    assert load.outcomes, "no load ran"
    failures = [o for o in load.outcomes if not isinstance(o.status, int)]
    assert failures == [], failures[:10]
    assert [o for o in load.outcomes if o.status >= 500 and o.status != 503] == []
    assert max(o.seconds for o in load.outcomes) < CALL_BOUND_SECONDS
    for outcome in load.outcomes:
        if outcome.status == 503:
            assert outcome.retry_after is not None and int(outcome.retry_after) >= 1, outcome
            assert outcome.problem is not None and outcome.problem.endswith(
                ("/rate-limit-unavailable", "/database-unavailable", "/metering-unavailable")
            ), outcome
    before = [o for o in load.outcomes if o.started + o.seconds < fault_at]
    assert before and all(o.status < 300 for o in before), [o for o in before if o.status >= 300]
    recovered = [o for o in load.outcomes if o.started >= back_at + RECOVERY_SECONDS]
    assert recovered, "no call ran after the recovery time"
    late = [o for o in recovered if o.status >= 300]
    assert late == [], late[:10]
    during = [o for o in load.outcomes if fault_at <= o.started < back_at]
    print(f"{len(load.outcomes)} calls, slowest {max(o.seconds for o in load.outcomes):.2f} s")
    return Counter((o.op, o.status, (o.problem or "").rsplit("/", 1)[-1]) for o in during)


async def settle_and_read(load: Load, servers: list[Server], key: str, pg: PostgresServer) -> Books:
    """Capture the holds whose capture failed and wait until every hold a client was told
    of is settled; then run the sweep as it will run once the holds expire, which voids the
    holds whose write was cut before it could be answered (their outcome was unknown: the
    client got 503). Then nothing is held, the ledger's invariants hold, every
    acknowledged usage event is stored exactly once, and every served gateway call is
    recorded."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(headers=headers, timeout=CALL_BOUND_SECONDS) as http:
        for base, hold_id in load.uncaptured:
            url = f"{base}/v1/holds/{hold_id}/capture"
            answer = await http.post(url, json={"amount_micros": 60})
            assert answer.status_code == 200, answer.text
        me = await http.get(f"{servers[0].base_url}/v1/customers/me")
        customer_id = me.json()["id"]
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        books = await read_books(pg.url, customer_id)
        if not books.open_holds & load.answered_holds or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert books.open_holds & load.answered_holds == set()
    assert books.problems == []
    await sweep_later(pg.url, hours=HOLD_EXPIRY_HOURS)
    books = await read_books(pg.url, customer_id)
    assert books.problems == []
    assert books.holds["open"] == 0, books.holds
    missing = load.acknowledged - set(books.events)
    assert not missing, f"{len(missing)} acknowledged usage events not stored"
    unrecorded = {call for call in load.served_calls if f"{call}:api_calls" not in books.events}
    assert not unrecorded, f"{len(unrecorded)} served gateway calls not recorded"
    assert set(books.events.values()) == {1}
    return books


@pytest.mark.parametrize("policy", ["fail-closed", "fail-open"])
async def test_redis_stopped_then_started(
    tmp_path: Path, upstream: FakeUpstream, policy: str
) -> None:
    """Redis stopped for 4 s under load, then started again (empty)."""
    async with own_postgres() as pg, own_redis() as redis:
        async with two_processes(tmp_path, upstream, pg, redis, policy) as (servers, key):
            load, fault_at, back_at = await under_load(servers, key, redis.stop, redis.start)
            during = check_answers(load, fault_at, back_at)
            print(f"during the outage: {dict(during)}")
            check_policy(during, policy)
            await settle_and_read(load, servers, key, pg)


@pytest.mark.parametrize("policy", ["fail-closed", "fail-open"])
async def test_redis_paused_then_resumed(
    tmp_path: Path, upstream: FakeUpstream, policy: str
) -> None:
    """Redis paused with SIGSTOP for 4 s under load (connections hang), then SIGCONT."""
    async with own_postgres() as pg, own_redis() as redis:
        assert redis.process is not None
        process = redis.process

        async def pause() -> None:
            process.send_signal(signal.SIGSTOP)

        async def resume() -> None:
            process.send_signal(signal.SIGCONT)

        async with two_processes(tmp_path, upstream, pg, redis, policy) as (servers, key):
            try:
                load, fault_at, back_at = await under_load(servers, key, pause, resume)
            finally:
                process.send_signal(signal.SIGCONT)
            during = check_answers(load, fault_at, back_at)
            print(f"during the outage: {dict(during)}")
            check_policy(during, policy)
            await settle_and_read(load, servers, key, pg)


def check_policy(during: Counter[tuple[str, Any, Any]], policy: str) -> None:
    """While Redis was down: fail-closed refused rate-limited calls with 503, fail-open
    served them all."""
    limited = {
        (op, status, problem) for (op, status, problem) in during if op in ("chat", "authorize")
    }
    if policy == "fail-closed":
        assert ("chat", 503, "rate-limit-unavailable") in limited, during
        assert ("authorize", 503, "rate-limit-unavailable") in limited, during
    else:
        assert {status for (_, status, _) in during} <= {200}, during


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restarted(tmp_path: Path, upstream: FakeUpstream, mode: str) -> None:
    """PostgreSQL stopped (`fast`: clean; `immediate`: a crash) for 4 s under load, then
    started: 503 database-unavailable meanwhile, then every call succeeds again."""
    async with own_postgres() as pg, own_redis() as redis:
        async with two_processes(tmp_path, upstream, pg, redis, "fail-closed") as (servers, key):

            async def down() -> None:
                await pg.stop(mode)  # type: ignore[arg-type]

            load, fault_at, back_at = await under_load(servers, key, down, pg.start)
            during = check_answers(load, fault_at, back_at)
            print(f"during the outage: {dict(during)}")
            refused_events = {problem for (op, status, problem) in during if op == "events"}
            assert refused_events & {"database-unavailable", "metering-unavailable"}, during
            assert ("authorize", 503, "database-unavailable") in during, during
            await settle_and_read(load, servers, key, pg)
