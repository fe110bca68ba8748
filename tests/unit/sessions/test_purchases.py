"""What a customer bought from its wallet in a window (for invoices), on SQLite and
PostgreSQL: wallet-paid sessions and packs, not sessions a pack paid, nothing outside it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from tollhouse.catalog import Catalog
from tollhouse.clock import FrozenClock
from tollhouse.ledger import Ledger
from tollhouse.sessions import service as sessions
from tollhouse.storage import Database

NewCustomer = Callable[[], Awaitable[str]]


async def test_wallet_purchases_in_a_window(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock,
    new_customer: NewCustomer,
) -> None:  # fmt: skip
    customer = await new_customer()
    other = await new_customer()
    start = clock.now()
    fee = await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="hour",
        idempotency_key="h",
    )  # fmt: skip
    clock.advance(60)
    pack = await sessions.buy_pack(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="day",
        sessions=5, idempotency_key="p",
    )  # fmt: skip
    clock.advance(60)
    await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="day",
        idempotency_key="from-pack",
    )  # fmt: skip
    await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=other, product="hour",
        idempotency_key="theirs",
    )  # fmt: skip
    clock.advance(3600)  # the hour session ended: the next one is after the window
    await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="hour",
        idempotency_key="after",
    )  # fmt: skip

    async with db.sessions() as session:
        bought = await sessions.wallet_purchases(
            session, customer, start=start, end=start + timedelta(seconds=180)
        )

    assert [(p.kind, p.id, p.product, p.sessions, p.amount_micros, p.hold_id) for p in bought] == [
        ("session_fee", fee.session.id, "hour", 1, 250_000, fee.session.hold_id),
        ("session_pack", pack.pack.id, "day", 5, 4_500_000, pack.pack.hold_id),
    ]
