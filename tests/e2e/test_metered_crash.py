"""A real `tollhouse serve` process killed with SIGKILL in the middle of a metered session:
after a restart the session is billed exactly once.

Story: an operator runs one `tollhouse serve` (a SQLite file, or PostgreSQL) whose catalog
makes compute sessions short: a 4-second minimum run, 2-second slices (the server extends
and reaps every 0.4 s). A customer starts a session on `small` and the server extends its
paid time while it runs. Then the process is killed (SIGKILL: no shutdown, whatever it was
doing is cut off, perhaps between holding a slice and recording it). Nothing runs while the
session's paid time runs out. A new `serve` starts on the same database: its first pass
ends the session at `paid_until` (reason `lapsed`) and settles it. The bill is the paid run,
to the micro; the wallet is charged that once, nothing stays held, one `session.ended`.

The servers run on the system clock, so this test waits in real time (a few seconds) for
the slices to pass.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.test_multiprocess import SOURCE_ROOT, Server, launch, stop, wait_until_healthy
from tests.support.catalog import SMALL_MICROS_PER_HOUR, catalog_text
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

from tollhouse.keys import generate_key
from tollhouse.sessions.models import Session, SessionSlice
from tollhouse.storage import Database

COMPUTE_SESSIONS = """
compute_sessions: {min_run: 4, slice: 2, low_credit_slices: 0}
"""
CREDITS_MICROS = 1_000_000
WAIT_SECONDS = 30.0
"""Bound on waiting for the server to extend or close the session (it takes seconds)."""


def paid_cost(seconds: int) -> int:
    """The bill of `seconds` whole seconds on small: ceil(seconds * 75,000 / 3,600)."""
    return -(-seconds * SMALL_MICROS_PER_HOUR // 3600)


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'th.db'}"
        return
    url = await create_postgres_database()
    yield url
    await drop_postgres_database(url)


async def poll(read: Any, done: Any) -> Any:
    """`await read()` until `done(value)`, for at most `WAIT_SECONDS`."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        value = await read()
        if done(value):
            return value
        assert asyncio.get_running_loop().time() < deadline, f"gave up waiting: {value}"
        await asyncio.sleep(0.1)


async def test_a_killed_server_bills_the_session_once_after_restart(
    tmp_path: Path, upstream: FakeUpstream, database_url: str
) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(catalog_text(upstream.base_url) + COMPUTE_SESSIONS)
    operator_key = generate_key()
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOLLHOUSE_")}
    env.update(
        TOLLHOUSE_DATABASE_URL=database_url,
        TOLLHOUSE_CATALOG=str(catalog),
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
        PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    servers: list[Server] = []
    try:
        servers.append(first := launch("first", env, tmp_path))
        await wait_until_healthy(first)
        async with Api(first.base_url, operator_key) as operator:
            customer = await operator.ok("POST", "/v1/customers", json={"name": "c"})
            await operator.ok(
                "POST",
                f"/v1/customers/{customer['id']}/credits/grants",
                json={"amount_micros": CREDITS_MICROS, "idempotency_key": "seed"},
            )
            session = await operator.ok(
                "POST",
                "/v1/sessions",
                json={
                    "resource_tier": "small",
                    "idempotency_key": "c",
                    "customer_id": customer["id"],
                },
            )
            started = datetime.fromisoformat(session["started_at"])
            await poll(  # the server extends it: at least two slices past the minimum run
                lambda: operator.ok("GET", f"/v1/sessions/{session['id']}"),
                lambda view: (
                    datetime.fromisoformat(view["paid_until"]) >= started + timedelta(seconds=8)
                ),
            )
        first.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.process.wait)

        db = Database(database_url)
        try:
            async with db.transaction() as s:
                row = await s.get(Session, session["id"])
                assert row is not None and row.status == "active" and row.paid_until is not None
                paid_until = row.paid_until
                recorded = len(list(await s.scalars(select(SessionSlice.number).where(
                    SessionSlice.session_id == row.id))))  # fmt: skip
        finally:
            await db.dispose()
        assert recorded >= 3
        paid_seconds = (paid_until - row.started_at) // timedelta(seconds=1)
        await asyncio.sleep(max(0.0, (paid_until - datetime.now(UTC)).total_seconds()) + 0.5)

        servers.append(second := launch("second", env, tmp_path))
        await wait_until_healthy(second)
        async with Api(second.base_url, operator_key) as operator:
            ended = await poll(
                lambda: operator.ok("GET", f"/v1/sessions/{session['id']}"),
                lambda view: view["settled_at"] is not None,
            )
            balance = await operator.ok("GET", f"/v1/customers/{customer['id']}/balance")
            history = await operator.ok("GET", f"/v1/customers/{customer['id']}/transactions")
            events = await operator.ok(
                "GET", f"/v1/events?customer_id={customer['id']}&type=session.ended"
            )
    except BaseException:
        for server in servers:
            await stop(server)
            print(server.output())
        raise
    finally:
        for server in servers:
            await stop(server)

    billed = paid_cost(paid_seconds)
    assert (ended["status"], ended["end_reason"]) == ("ended", "lapsed")
    assert datetime.fromisoformat(ended["ended_at"]) == paid_until
    assert ended["billed_micros"] == billed
    assert (balance["available_micros"], balance["held_micros"]) == (CREDITS_MICROS - billed, 0)
    captured = [e for e in history if e["kind"] == "capture"]
    assert -sum(e["amount_micros"] for e in captured) == billed
    assert [(e["data"]["session_id"], e["data"]["cost_micros"]) for e in events["data"]] == [
        (session["id"], billed)
    ]
