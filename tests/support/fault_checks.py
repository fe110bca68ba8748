"""What fault tests read from the database once a run is over: the ledger's invariants, holds
by status, and the usage events stored per id."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from tollhouse.clock import SYSTEM_CLOCK
from tollhouse.ledger import Ledger
from tollhouse.ledger.models import LedgerHold
from tollhouse.ledger.service import check_invariants
from tollhouse.metering.models import UsageEvent
from tollhouse.storage import Database


@dataclass
class Books:
    """The database's state after a run, for one customer."""

    problems: list[str]
    """`ledger.service.check_invariants`: [] when the ledger is consistent."""
    holds: Counter[str]
    """Holds of the customer by status (`open`, `captured`, `voided`, `expired`)."""
    captured_micros: int
    """Sum of the customer's captured amounts."""
    events: Counter[str]
    """Stored usage events of the customer: event id -> rows (1 each, by the unique key)."""
    open_holds: set[str]
    """Ids of the customer's holds still open."""


async def read_books(database_url: str, customer_id: str) -> Books:
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            problems = await check_invariants(session)
            rows = await session.execute(
                select(LedgerHold.status, func.count(), func.sum(LedgerHold.captured_amount))
                .where(LedgerHold.customer_id == customer_id)
                .group_by(LedgerHold.status)
            )
            holds: Counter[str] = Counter()
            captured = 0
            for status, count, amount in rows:
                holds[status] = count
                captured += int(amount or 0)
            ids = await session.scalars(
                select(UsageEvent.event_id).where(UsageEvent.customer_id == customer_id)
            )
            events = Counter(ids)
            open_holds = set(
                await session.scalars(
                    select(LedgerHold.id).where(
                        LedgerHold.customer_id == customer_id, LedgerHold.status == "open"
                    )
                )
            )
    finally:
        await db.dispose()
    return Books(problems, holds, captured, events, open_holds)


async def sweep_later(database_url: str, hours: int) -> None:
    """Run the ledger's sweep as the sweeper will `hours` from now: holds expired by then
    are voided (`Ledger.sweep`)."""
    db = Database(database_url)
    ledger = Ledger(db, clock=SYSTEM_CLOCK)
    try:
        await ledger.start()
        await ledger.sweep(SYSTEM_CLOCK.now() + timedelta(hours=hours))
    finally:
        await ledger.stop()
        await db.dispose()
