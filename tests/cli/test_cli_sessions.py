"""`tollhouse sessions ...`: start, list, show, stop, and buy packs, on a SQLite file."""

from __future__ import annotations

from tests.support.catalog import SESSION_PACK_5_MICROS, SESSION_PRICE_MICROS
from tests.support.cli import Cli


def test_a_pack_bought_from_the_cli_pays_the_next_session(migrated: Cli) -> None:
    customer = migrated.customer()
    migrated.json("credits", "grant", customer, "10.00")
    args = ("sessions", "packs", "buy", customer, "analysis", "5", "--idempotency-key", "p1")
    pack = migrated.json(*args)
    replay = migrated.json(*args)
    assert (pack["sessions_left"], pack["price_micros"], pack["replayed"]) == (
        5,
        SESSION_PACK_5_MICROS,
        False,
    )
    assert (replay["id"], replay["replayed"]) == (pack["id"], True)
    started = migrated.json("sessions", "start", customer, "analysis")
    assert (started["paid_with"], started["pack_id"], started["status"]) == (
        "pack",
        pack["id"],
        "active",
    )
    left = migrated.json("sessions", "packs", "list", customer)
    assert {q["product"]: q["sessions_left"] for q in left} == {
        "analysis": 4,
        "imaging": 0,
        "analyst": 0,
    }
    balance = migrated.json("credits", "balance", customer)
    assert balance["available_micros"] == 10_000_000 - SESSION_PACK_5_MICROS


def test_start_show_list_and_stop(migrated: Cli) -> None:
    customer = migrated.customer()
    migrated.json("credits", "grant", customer, "2.00")
    started = migrated.json("sessions", "start", customer, "analysis", "--idempotency-key", "s")
    assert (started["paid_with"], started["fee_micros"]) == ("wallet", SESSION_PRICE_MICROS)
    busy = migrated.invoke("sessions", "start", customer, "analysis")
    assert busy.exit_code == 1 and "session-active" in busy.stderr
    shown = migrated.json("sessions", "show", started["id"])
    assert shown["tokens_left"] == 100_000
    assert 0 < shown["seconds_left"] <= 86_400  # the CLI runs on the system clock
    listed = migrated.json("sessions", "list", "--customer", customer, "--status", "active")
    assert [s["id"] for s in listed] == [started["id"]]
    stopped = migrated.json("sessions", "stop", started["id"])
    assert (stopped["status"], stopped["end_reason"]) == ("ended", "terminated")
    table = migrated.ok("sessions", "list").stdout
    assert started["id"] in table and "ended" in table
    missing = migrated.invoke("sessions", "show", "ses_nope")
    assert missing.exit_code == 1 and "session-not-found" in missing.stderr
