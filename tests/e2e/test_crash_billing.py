"""A hundred SIGKILLs of a `tollhouse serve` process in the middle of gateway calls and
compute sessions: every call and every session is billed exactly once, or is still open and
billable.

Story: one PostgreSQL database, one server process at a time. A client fires a seeded random
mix at it: chat completions (whole or streamed, some from an upstream that is slow, so that
the kill lands while the upstream is answering or while the stream flows), and compute
sessions started, heartbeaten ("I am alive", while the server extends their paid time a
slice ahead every 0.2 s) and stopped. After a random delay the server is killed with SIGKILL
(no shutdown: whatever it was doing stops between any two instructions) and a new one starts
on the same database. A session start that got no answer is sent again, with its key, as a
client does after a lost connection. A hundred times.

Then a last server runs: its first pass ends what lapsed while no process ran; the client
stops every session still running (after checking that each is paid ahead: billable). Then
the hold sweeper runs, at an instant past every gateway hold's expiry (a gateway hold lives
the upstream timeout plus a minute: the test does not wait that long; the sweep is the real
code, on a later clock). The ledger must then be consistent (`check_invariants`), no hold open,
no hold captured twice or both captured and voided; every call answered whole (a whole answer,
or a stream up to its end and cost comment) was captured exactly once at the cost it reported,
with its usage events stored (the gateway charges before it answers: a kill after the answer
finds the charge committed); every session ended, settled once, its bill the sum of its
captured slices, one `session.ended` each; and each wallet equals its grant minus what was
captured from it, to the micro.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.test_multiprocess import SOURCE_ROOT, Server, stop, wait_until_healthy
from tests.support.catalog import catalog_text
from tests.support.forked_servers import ServerForker
from tests.support.ports import free_port
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.clock import SYSTEM_CLOCK
from tollhouse.events.models import Event
from tollhouse.keys import generate_key
from tollhouse.ledger import HoldStatus, Ledger
from tollhouse.ledger.models import EntryKind, LedgerEntry, LedgerHold
from tollhouse.ledger.service import check_invariants
from tollhouse.ledger.service.reads import balance
from tollhouse.metering.models import UsageEvent
from tollhouse.sessions.billing import run_cost
from tollhouse.sessions.models import Session, SessionSlice
from tollhouse.storage import Database

pytestmark = pytest.mark.load

SEED = 2323
RUNS = 100
SESSION_CUSTOMERS = 3
"""One metered session at a time each (one active session per customer and tier)."""
CREDITS_MICROS = 100_000_000
SLOW_SECONDS = 0.8
"""The upstream's `slow` model answers after this; `slow-stream` sends a chunk every tenth."""
FIRE_WITHIN_SECONDS = 0.5
"""Each operation of a run starts at a random moment within this after the server is up."""
KILL_WITHIN_SECONDS = 1.0
"""The kill comes at a random moment within this after the server is up."""
CALLS_PER_RUN = (2, 6)
COMPUTE_SESSIONS = "\ncompute_sessions: {min_run: 2, slice: 1, low_credit_slices: 0}\n"
"""Sessions hold 2 s to start, then 1 s slices, extended (and reaped) every 0.2 s."""
MODELS = [
    ("test-chat", False),
    ("test-chat", True),
    ("test-chat-slow", False),
    ("test-chat-slow-stream", True),
]
COST_COMMENT = re.compile(rb": x-tollhouse-cost-micros=(\d+)")
SETTLE_SECONDS = 30.0


@dataclass
class CallRecord:
    """What the client saw of one gateway call."""

    model: str
    stream: bool
    status: int | None = None
    request_id: str | None = None
    hold_id: str | None = None
    complete: bool = False
    """The whole answer arrived (a stream: up to its cost comment)."""
    cost_micros: int | None = None


@dataclass
class SessionClient:
    """A customer that runs one compute session at a time."""

    customer_id: str
    starts: int = 0
    pending_key: str | None = None
    """A start sent without an answer: sent again, same key, in the next run."""
    active: str | None = None
    session_ids: set[str] = field(default_factory=set)


async def gateway_call(http: httpx.AsyncClient, url: str, record: CallRecord) -> None:
    body: dict[str, Any] = {
        "model": record.model,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if record.stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    try:
        async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            record.status = response.status_code
            record.request_id = response.headers.get("x-tollhouse-request-id")
            record.hold_id = response.headers.get("x-tollhouse-hold-id")
            content = b"".join([chunk async for chunk in response.aiter_bytes()])
    except httpx.TransportError:
        return
    if record.status != 200:
        return
    if record.stream:
        found = COST_COMMENT.search(content)
        if found is None:
            return  # the stream was cut before its end
        record.cost_micros = int(found.group(1))
    else:
        record.cost_micros = int(response.headers["x-tollhouse-cost-micros"])
    record.complete = True


async def session_step(
    http: httpx.AsyncClient, url: str, client: SessionClient, *, stop_it: bool
) -> None:
    """Start (or start again) the client's session, or heartbeat it, or stop it (`stop_it`);
    an answer lost to the kill leaves the state as it was (a start is then sent again)."""
    try:
        if client.pending_key is not None or client.active is None:
            if client.pending_key is None:
                client.starts += 1
                client.pending_key = f"{client.customer_id}-{client.starts}"
            response = await http.post(
                f"{url}/v1/sessions",
                json={
                    "resource_tier": "small",
                    "idempotency_key": client.pending_key,
                    "customer_id": client.customer_id,
                },
            )
            assert response.status_code in (200, 201), response.text
            client.pending_key = None
            client.active = response.json()["id"]
            client.session_ids.add(client.active)
        elif not stop_it:
            response = await http.post(f"{url}/v1/sessions/{client.active}/heartbeat")
            if response.status_code == 402:  # it lapsed while no process ran
                assert response.json()["type"].endswith("/session-ended"), response.text
                client.active = None
            else:
                assert response.status_code == 200, response.text
        else:
            response = await http.post(f"{url}/v1/sessions/{client.active}/terminate")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "ended"
            client.active = None
    except httpx.TransportError:
        return


async def delayed(seconds: float, work: Any) -> None:
    await asyncio.sleep(seconds)
    await work


async def one_run(
    server: Server,
    operator_key: str,
    gateway_key: str,
    clients: list[SessionClient],
    rng: random.Random,
) -> list[CallRecord]:
    """Fire the run's operations, SIGKILL the server at a random moment, wait for the
    client side to notice; the calls' records."""
    records = [CallRecord(*rng.choice(MODELS)) for _ in range(rng.randint(*CALLS_PER_RUN))]
    limits = httpx.Limits(max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(
            timeout=30, limits=limits, headers={"Authorization": f"Bearer {gateway_key}"}
        ) as gateway,
        httpx.AsyncClient(
            timeout=30, limits=limits, headers={"Authorization": f"Bearer {operator_key}"}
        ) as operator,
    ):
        work = [
            delayed(rng.uniform(0, FIRE_WITHIN_SECONDS), gateway_call(gateway, server.base_url, r))
            for r in records
        ] + [
            delayed(
                rng.uniform(0, FIRE_WITHIN_SECONDS),
                session_step(operator, server.base_url, client, stop_it=rng.random() < 0.4),
            )
            for client in clients
        ]
        tasks = [asyncio.create_task(w) for w in work]
        await asyncio.sleep(rng.uniform(0, KILL_WITHIN_SECONDS))
        server.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(server.process.wait)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=SETTLE_SECONDS)
    return records


async def test_sigkill_at_random_points_bills_every_call_and_session_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    upstream = FakeUpstream(slow_seconds=SLOW_SECONDS)
    await upstream.start()
    database_url = await create_postgres_database()
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(catalog_text(upstream.base_url, text_rpm=1_000_000) + COMPUTE_SESSIONS)
    operator_key = generate_key()
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLHOUSE_")}
    env.update(
        TOLLHOUSE_DATABASE_URL=database_url,
        TOLLHOUSE_CATALOG=str(catalog),
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
        TOLLHOUSE_TEST_UPSTREAM_KEY="upstream-secret",
        TOLLHOUSE_UPSTREAM_TIMEOUT_SECONDS="3",
        PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    forker = ServerForker({k: v for k, v in env.items() if not k.startswith("TOLLHOUSE_")})

    async def launch(name: str) -> Server:
        port = free_port()
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        process = await forker.fork(env, tmp_path, port, out, err)
        return Server(name, process, f"http://127.0.0.1:{port}", out, err)  # type: ignore[arg-type]

    servers: list[Server] = []
    records: list[CallRecord] = []
    loop = asyncio.get_running_loop()
    try:
        servers.append(server := await launch("setup"))
        await wait_until_healthy(server)
        async with Api(server.base_url, operator_key) as operator:
            customers = []
            for n in range(SESSION_CUSTOMERS + 1):
                customer = await operator.ok("POST", "/v1/customers", json={"name": f"c{n}"})
                await operator.ok(
                    "POST",
                    f"/v1/customers/{customer['id']}/credits/grants",
                    json={"amount_micros": CREDITS_MICROS, "idempotency_key": "seed"},
                )
                customers.append(customer["id"])
            gateway_customer, session_customers = customers[0], customers[1:]
            key = await operator.ok("POST", f"/v1/customers/{gateway_customer}/keys", json={})
        await stop(server)
        clients = [SessionClient(customer_id) for customer_id in session_customers]

        started = loop.time()
        starts: list[float] = []
        for run in range(RUNS):
            servers.append(server := await launch(f"run-{run}"))
            up = loop.time()
            await wait_until_healthy(server)
            starts.append(loop.time() - up)
            records += await one_run(server, operator_key, key["key"], clients, rng)
        runs_seconds = loop.time() - started

        servers.append(server := await launch("last"))
        await wait_until_healthy(server)
        async with httpx.AsyncClient(
            timeout=30, headers={"Authorization": f"Bearer {operator_key}"}
        ) as operator_http:
            for client in clients:  # answers lost to the last kill
                if client.pending_key is not None:
                    await session_step(operator_http, server.base_url, client, stop_it=False)
                    assert client.pending_key is None
            running = await billable_sessions(database_url)
            for session_id in running:
                response = await operator_http.post(
                    f"{server.base_url}/v1/sessions/{session_id}/terminate"
                )
                assert response.status_code == 200, response.text
            await wait_settled(database_url)
        await stop(server)

        await sweep_past_gateway_holds(database_url)
        report = await check_books(
            database_url, records, clients, gateway_customer, session_customers
        )
    except BaseException:
        for server in servers:
            await stop(server)
        for server in servers[-3:]:
            print(server.output())
        raise
    finally:
        for server in servers:
            await stop(server)
        forker.close()
        await upstream.stop()
        await drop_postgres_database(database_url)

    statuses = Counter((r.status, r.complete) for r in records)
    starts.sort()
    print(
        f"{RUNS} kills in {runs_seconds:.1f} s (a server start: median {starts[RUNS // 2]:.2f} s,"
        f" max {starts[-1]:.2f} s); calls (status, whole): {dict(statuses)}; {report}"
    )


async def billable_sessions(database_url: str) -> list[str]:
    """The sessions still running, once the last server's first passes have ended what
    lapsed and extended the rest: each paid ahead of now by an open slice hold."""
    db = Database(database_url)
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    try:
        while True:
            async with db.transaction() as s:
                now = SYSTEM_CLOCK.now()
                rows = (await s.scalars(select(Session).where(Session.status == "active"))).all()
                unpaid = []
                for row in rows:
                    open_holds = await s.scalar(
                        select(func.count())
                        .select_from(SessionSlice)
                        .join(LedgerHold, LedgerHold.id == SessionSlice.hold_id)
                        .where(SessionSlice.session_id == row.id, LedgerHold.status == "open")
                    )
                    if not open_holds or row.paid_until is None or row.paid_until <= now:
                        unpaid.append((row.id, open_holds, row.paid_until, now))
            if not unpaid:
                return [row.id for row in rows]
            assert asyncio.get_running_loop().time() < deadline, unpaid
            await asyncio.sleep(0.2)
    finally:
        await db.dispose()


async def wait_settled(database_url: str) -> None:
    """Until every session is ended and settled (the reaper finishes what a stop left)."""
    db = Database(database_url)
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    try:
        while True:
            async with db.transaction() as s:
                left = await s.scalar(
                    select(func.count()).select_from(Session).where(Session.settled_at.is_(None))
                )
            if not left:
                return
            assert asyncio.get_running_loop().time() < deadline, f"{left} sessions unsettled"
            await asyncio.sleep(0.2)
    finally:
        await db.dispose()


async def sweep_past_gateway_holds(database_url: str) -> None:
    """The ledger's hold sweep, at an instant past the expiry of every open hold that is not
    a session's slice (those the sessions settled)."""
    db = Database(database_url)
    try:
        async with db.transaction() as s:
            latest = await s.scalar(
                select(func.max(LedgerHold.expires_at)).where(LedgerHold.status == "open")
            )
        if latest is None:
            return
        assert latest < SYSTEM_CLOCK.now() + timedelta(minutes=2), latest
        ledger = Ledger(db, clock=SYSTEM_CLOCK)
        await ledger.start()
        try:
            await ledger.sweep(latest + timedelta(seconds=1))
        finally:
            await ledger.stop()
    finally:
        await db.dispose()


async def check_books(
    database_url: str,
    records: list[CallRecord],
    clients: list[SessionClient],
    gateway_customer: str,
    session_customers: list[str],
) -> str:
    """Assert the books; a line of what was found."""
    db = Database(database_url)
    try:
        async with db.transaction() as s:
            assert await check_invariants(s) == []
            holds = {h.id: h for h in await s.scalars(select(LedgerHold))}
            captures = Counter(
                hold_id
                for hold_id, _ in (
                    await s.execute(
                        select(LedgerEntry.hold_id, LedgerEntry.transfer_id)
                        .where(LedgerEntry.kind == EntryKind.CAPTURE.value)
                        .distinct()
                    )
                ).all()
            )
            calls = {
                row.event_id.removesuffix(":api_calls"): row
                for row in await s.scalars(
                    select(UsageEvent).where(
                        UsageEvent.customer_id == gateway_customer, UsageEvent.meter == "api_calls"
                    )
                )
            }
            sessions = {row.id: row for row in await s.scalars(select(Session))}
            slices = (await s.execute(select(SessionSlice.session_id, SessionSlice.hold_id))).all()
            ended_events = Counter(
                event.data["session_id"]
                for event in await s.scalars(select(Event).where(Event.type == "session.ended"))
            )
            wallets = {
                customer_id: await balance(s, customer_id, now=SYSTEM_CLOCK.now())
                for customer_id in [gateway_customer, *session_customers]
            }
    finally:
        await db.dispose()

    # every hold resolved, once: captured (one capture transfer) or voided / expired (none)
    assert [h.id for h in holds.values() if h.status == HoldStatus.OPEN] == []
    for hold in holds.values():
        if hold.status == HoldStatus.CAPTURED:
            assert captures[hold.id] == 1, hold.id
            assert 0 <= hold.captured_amount <= hold.amount
        else:
            assert captures[hold.id] == 0 and hold.captured_amount == 0, hold.id

    # calls: answered whole -> captured once at the reported cost, its usage events stored
    # (the charge is committed before the answer); cut -> captured once or voided (above)
    answered = [r for r in records if r.complete]
    uncharged = [r for r in answered if holds[str(r.hold_id)].status != HoldStatus.CAPTURED]
    assert uncharged == [], f"{len(uncharged)} of {len(answered)} calls answered, not charged"
    for record in answered:
        assert record.hold_id is not None and record.request_id is not None, record
        hold = holds[record.hold_id]
        assert captures[hold.id] == 1 and hold.captured_amount == record.cost_micros, record
        event = calls.get(record.request_id)
        assert event is not None, f"usage of an answered call not stored: {record}"
        assert event.properties["hold_id"] == hold.id, record
        assert event.properties["cost_micros"] == record.cost_micros, record
    assert len({r.hold_id for r in records if r.hold_id}) == len([r for r in records if r.hold_id])
    cut = [r for r in records if r.hold_id and not r.complete]
    cut_charged = sum(holds[str(r.hold_id)].status == HoldStatus.CAPTURED for r in cut)

    # sessions: every one ended and settled once; its bill = its run at its rate (never
    # more than its recorded slices held) = what its recorded slices captured; a slice held
    # by an extension the kill cut before it was recorded is released, nothing captured
    client_sessions = set().union(*(client.session_ids for client in clients))
    assert client_sessions <= set(sessions)
    recorded: dict[str, list[str]] = {}
    for session_id, hold_id in slices:
        if hold_id is not None:
            recorded.setdefault(session_id, []).append(hold_id)
    ended = Counter(row.end_reason for row in sessions.values())
    for row in sessions.values():
        assert row.status == "ended" and row.settled_at is not None, row.id
        assert row.ended_at is not None and row.rate_micros_per_hour is not None
        assert ended_events[row.id] == 1, row.id
        slice_holds = [holds[h] for h in recorded.get(row.id, [])]
        held = sum(h.amount for h in slice_holds)
        run = run_cost(row.started_at, row.ended_at, row.rate_micros_per_hour)
        assert row.billed_micros == min(run, held), (row.id, row.billed_micros, run, held)
        assert sum(h.captured_amount for h in slice_holds) == row.billed_micros, row.id
    slice_hold_ids = {h for hs in recorded.values() for h in hs}
    unrecorded = 0
    for hold in holds.values():
        if hold.customer_id in session_customers and hold.id not in slice_hold_ids:
            assert hold.metadata_["session_id"] in sessions, hold.id
            assert hold.status != HoldStatus.CAPTURED, hold.id
            unrecorded += 1

    # wallets: grant - captures, to the micro, nothing held
    for customer_id, wallet in wallets.items():
        taken = sum(h.captured_amount for h in holds.values() if h.customer_id == customer_id)
        assert (wallet.available_micros, wallet.held_micros) == (CREDITS_MICROS - taken, 0)

    return (
        f"{len(holds)} holds; {len(answered)} calls answered whole, each charged once with its"
        f" usage stored; {len(cut)} cut by a kill ({cut_charged} of them charged, the rest"
        f" voided); {len(sessions)} sessions, ended {dict(ended)}; {unrecorded} slice"
        f" holds cut before they were recorded, released"
    )
