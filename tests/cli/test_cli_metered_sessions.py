"""`tollhouse sessions start --tier|estimate|show --watch|stop|reap` for metered sessions, on a
SQLite file, on the system clock (so bills are checked against the times the CLI prints).

The test catalog's free plan runs `small` at $0.075/h (75,000 micros/h); a start holds 15
minutes (18,750 micros).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import datetime, timedelta

from tests.support.catalog import SMALL_MICROS_PER_HOUR
from tests.support.cli import Cli

from tollhouse.catalog import load_catalog
from tollhouse.clock import SYSTEM_CLOCK
from tollhouse.config import get_settings
from tollhouse.ledger import Ledger
from tollhouse.sessions import service as sessions
from tollhouse.sessions.billing import run_cost
from tollhouse.storage import Database

CREDITS_MICROS = 2_000_000
START_HOLD_MICROS = 18_750


def funded(cli: Cli) -> str:
    customer = cli.customer()
    cli.json("credits", "grant", customer, "2.00")
    return customer


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_estimate_prices_a_run_at_the_plan_rate(migrated: Cli) -> None:
    customer = funded(migrated)
    quote = migrated.json("sessions", "estimate", customer, "--tier", "small", "--duration", "30m")
    assert (quote["cost_micros"], quote["rate_micros_per_hour"], quote["plan"]) == (
        37_500,
        SMALL_MICROS_PER_HOUR,
        "free",
    )
    assert quote["start_hold_micros"] == START_HOLD_MICROS
    hours = migrated.json(
        "sessions", "estimate", customer, "--tier", "small", "--duration", "1h30m"
    )
    assert hours["cost_micros"] == 112_500
    bad = migrated.invoke("sessions", "estimate", customer, "--tier", "small", "--duration", "soon")
    assert bad.exit_code == 2 and "not a duration" in bad.stderr
    refused = migrated.invoke(
        "sessions", "estimate", customer, "--tier", "large", "--duration", "1h"
    )
    assert refused.exit_code == 1 and "resource-tier-not-in-plan" in refused.stderr


def test_start_list_show_and_stop_bill_the_run(migrated: Cli) -> None:
    customer = funded(migrated)
    started = migrated.json("sessions", "start", customer, "--tier", "small")
    assert (started["kind"], started["resource_tier"], started["status"]) == (
        "metered",
        "small",
        "active",
    )
    held = migrated.json("credits", "balance", customer)
    assert (held["available_micros"], held["held_micros"]) == (
        CREDITS_MICROS - START_HOLD_MICROS,
        START_HOLD_MICROS,
    )
    listed = migrated.json("sessions", "list", "--customer", customer, "--status", "active")
    assert [s["id"] for s in listed] == [started["id"]]
    shown = migrated.ok("sessions", "show", started["id"]).stdout
    assert "compute:small" in shown and "metered" in shown
    stopped = migrated.json("sessions", "stop", started["id"])
    billed = run_cost(moment(stopped["started_at"]), moment(stopped["ended_at"]), 75_000)
    assert (stopped["end_reason"], stopped["billed_micros"]) == ("terminated", billed)
    assert billed >= 21  # at least one second
    after = migrated.json("credits", "balance", customer)
    assert (after["available_micros"], after["held_micros"]) == (CREDITS_MICROS - billed, 0)


def test_start_names_a_product_or_a_tier(migrated: Cli) -> None:
    customer = funded(migrated)
    both = migrated.invoke("sessions", "start", customer, "analysis", "--tier", "small")
    neither = migrated.invoke("sessions", "start", customer)
    large = migrated.invoke("sessions", "start", customer, "--tier", "large")
    assert [r.exit_code for r in (both, neither, large)] == [1, 1, 1]
    assert "exactly one" in both.stderr and "exactly one" in neither.stderr
    assert "resource-tier-not-in-plan" in large.stderr and "'pro'" in large.stderr


def test_reap_closes_a_session_whose_paid_time_ran_out(migrated: Cli) -> None:
    """Every process was down: the session's paid time ended an hour ago (set behind the
    CLI's back). `reap` ends it at `paid_until` and bills exactly the minimum run."""
    customer = funded(migrated)
    started = migrated.json("sessions", "start", customer, "--tier", "small")
    with sqlite3.connect(migrated.db_path) as conn:
        back = "-7200 seconds"
        conn.execute(
            "UPDATE sessions SET started_at = datetime(started_at, ?), "
            "paid_until = datetime(paid_until, ?), last_heartbeat_at = datetime(started_at, ?) "
            "WHERE id = ?",
            (back, back, back, started["id"]),
        )
    report = migrated.json("sessions", "reap")
    assert report == {"ended": {"lapsed": 1}, "settled": 1, "fees_captured": 0}
    assert migrated.json("sessions", "reap") == {"ended": {}, "settled": 0, "fees_captured": 0}
    ended = migrated.json("sessions", "show", started["id"])
    assert (ended["end_reason"], ended["billed_micros"]) == ("lapsed", START_HOLD_MICROS)
    assert ended["ended_at"] == ended["paid_until"]
    balance = migrated.json("credits", "balance", customer)
    assert (balance["available_micros"], balance["held_micros"]) == (
        CREDITS_MICROS - START_HOLD_MICROS,
        0,
    )
    table = migrated.ok("sessions", "reap").stdout
    assert "settled" in table and "fees_captured" in table


def test_show_watch_follows_the_cost_until_the_session_ends(migrated: Cli) -> None:
    """`show --watch` refreshes until another process (a thread here, with its own database
    connection and ledger) stops the session, then prints the final bill (a terminal sees
    every refresh in place; CliRunner's pipe gets the last frame)."""
    customer = funded(migrated)
    started = migrated.json("sessions", "start", customer, "--tier", "small")
    settings = get_settings()

    async def stop_elsewhere() -> None:
        await asyncio.sleep(0.5)
        db = Database(settings.database_url)
        async with Ledger(db, clock=SYSTEM_CLOCK) as ledger:
            await sessions.stop(
                db, ledger, started["id"], catalog=load_catalog(settings.catalog),
                clock=SYSTEM_CLOCK,
            )  # fmt: skip
        await db.dispose()

    other = threading.Thread(target=asyncio.run, args=(stop_elsewhere(),))
    other.start()
    try:
        watched = migrated.ok("sessions", "show", started["id"], "--watch", "--interval", "0.1")
    finally:
        other.join()
    assert "status" in watched.stdout and "ended (terminated)" in watched.stdout
    assert "ran for" in watched.stdout
    final = migrated.json("sessions", "show", started["id"], "--watch")
    assert final["status"] == "ended" and final["billed_micros"] >= 21
    assert f"{final['billed_micros'] / 1e6:.6f} USD" in watched.stdout
    assert timedelta(0) < moment(final["ended_at"]) - moment(final["started_at"])
