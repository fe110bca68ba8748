"""`tollhouse events list` on a migrated SQLite file: events emitted through the service (no
producer writes them yet) read back in id order, per customer, by type, page by page."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.support.cli import Cli

from tollhouse.clock import SystemClock
from tollhouse.events import service as events
from tollhouse.storage import Database

CUSTOMER = "cus_0000000000000000000001"
OTHER = "cus_0000000000000000000002"


def emit_all(cli: Cli, facts: list[tuple[str | None, str]]) -> list[str]:
    """Emit `(customer_id, type)` facts in one transaction; their ids, in emit order."""

    async def main() -> list[str]:
        db = Database(cli.url)
        try:
            async with db.transaction() as session:
                return [
                    (
                        await events.emit(
                            session,
                            customer_id=customer,
                            type=type,
                            data={"number": number},
                            clock=SystemClock(),
                        )
                    ).id
                    for number, (customer, type) in enumerate(facts)
                ]
        finally:
            await db.dispose()

    return asyncio.run(main())


FACTS: list[tuple[str | None, str]] = [
    (CUSTOMER, "session.started"),
    (OTHER, "session.started"),
    (CUSTOMER, "session.ended"),
    (None, "catalog.changed"),
    (CUSTOMER, "session.low_credit"),
]


class TestEventsList:
    def test_lists_every_event_in_id_order(self, migrated: Cli) -> None:
        ids = emit_all(migrated, FACTS)
        listed = migrated.json("events", "list")
        assert [event["id"] for event in listed["data"]] == ids
        assert [event["data"]["number"] for event in listed["data"]] == list(range(5))
        assert listed["has_more"] is False and listed["next_cursor"] == ids[-1]

    def test_customer_and_type_filters(self, migrated: Cli) -> None:
        ids = emit_all(migrated, FACTS)
        mine = migrated.json("events", "list", "--customer", CUSTOMER)
        assert [event["id"] for event in mine["data"]] == [ids[0], ids[2], ids[4]]
        typed = migrated.json(
            "events", "list", "--type", "session.ended", "--type", "catalog.changed"
        )
        assert [event["id"] for event in typed["data"]] == [ids[2], ids[3]]

    def test_after_pages_on_from_the_cursor(self, migrated: Cli) -> None:
        ids = emit_all(migrated, FACTS)
        read: list[str] = []
        args: list[str] = []
        while True:
            page: dict[str, Any] = migrated.json("events", "list", "--limit", "2", *args)
            read += [event["id"] for event in page["data"]]
            if not page["has_more"]:
                break
            args = ["--after", page["next_cursor"]]
        assert read == ids

    def test_table_says_how_to_read_on(self, migrated: Cli) -> None:
        ids = emit_all(migrated, FACTS)
        shown = migrated.ok("events", "list", "--limit", "2").stdout
        assert ids[0] in shown and ids[1] in shown and ids[2] not in shown
        assert f"more follow: --after {ids[1]}" in shown

    @pytest.mark.parametrize(
        "args", [["--after", "evt_bad"], ["--type", "Session"], ["--limit", "0"]]
    )
    def test_bad_arguments_exit_non_zero(self, migrated: Cli, args: list[str]) -> None:
        result = migrated.invoke("events", "list", *args)
        assert result.exit_code != 0
        assert "Traceback" not in result.output
