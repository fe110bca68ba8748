"""What fault tests read from the database once a run is over: the ledger's invariants, holds
by status, and the usage events stored per id."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select

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
    finally:
        await db.dispose()
    return Books(problems, holds, captured, events)
