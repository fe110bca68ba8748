"""Rollover on PostgreSQL: two processes' worth of concurrent runs (two engines, two ledger
writers) roll each boundary once and grant each period's credits once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select

from tollhouse.catalog import Catalog, load_catalog_text
from tollhouse.clock import FrozenClock
from tollhouse.customers import service as customers
from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.storage import Database
from tollhouse.subscriptions import (
    SubscriptionCharge,
    SubscriptionHistory,
    deliver_grants,
    ensure_subscription,
    get_subscription,
    roll_over,
    set_payment_method,
)

CATALOG = """
version: "pg"
plans:
  free: {rank: 0, included_credits: "1.00"}
  basic: {rank: 10, price: "9.00", included_credits: "5.00"}
"""
CUSTOMERS = 8


async def test_two_concurrent_runs_roll_each_period_once(postgres_db: Database) -> None:
    catalog: Catalog = load_catalog_text(CATALOG)
    clock = FrozenClock(datetime(2026, 3, 15, 12, tzinfo=UTC))
    other = Database(postgres_db.url)  # a second "process": its own engine and ledger writer
    ids: list[str] = []
    async with Ledger(postgres_db, clock=clock) as first, Ledger(other, clock=clock) as second:
        async with postgres_db.transaction() as session:
            for n in range(CUSTOMERS):
                customer = await customers.create(session, name=f"c{n}", clock=clock)
                await ensure_subscription(
                    session, customer.id, catalog=catalog, clock=clock, plan="basic"
                )
                await set_payment_method(session, customer.id, True, catalog=catalog, clock=clock)
                ids.append(customer.id)
        await deliver_grants(postgres_db, ledger=first, clock=clock)

        clock.set(datetime(2026, 5, 20, tzinfo=UTC))  # two boundaries: Apr 15, May 15
        reports = await asyncio.gather(
            roll_over(postgres_db, catalog=catalog, clock=clock, ledger=first),
            roll_over(other, catalog=catalog, clock=clock, ledger=second),
            roll_over(postgres_db, catalog=catalog, clock=clock, ledger=first),
        )
        assert sum(r.periods_rolled for r in reports) == 2 * CUSTOMERS

        async with postgres_db.sessions() as session:
            for customer_id in ids:
                sub = await get_subscription(session, customer_id)
                assert sub.current_period_start == datetime(2026, 5, 15, tzinfo=UTC)
                assert sub.version >= 3
                grants = await ledger_service.list_grants(session, customer_id)
                keys = [g.idempotency_key for g in grants]
                assert len(keys) == len(set(keys)) == 2  # March (granted), May; April skipped
                live = [g for g in grants if g.is_live(clock.now())]
                assert [g.amount for g in live] == [5_000_000]
            rolled = await session.scalar(
                select(func.count()).where(SubscriptionHistory.event == "period_rolled")
            )
            fees = await session.scalar(select(func.count()).select_from(SubscriptionCharge))
        assert rolled == 2 * CUSTOMERS
        assert fees == 3 * CUSTOMERS  # March, April, May
    await other.dispose()
