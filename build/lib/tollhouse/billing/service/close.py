"""The period close: an invoice for each boundary a customer's subscription crossed, then
every draft finalized (numbered). Runs in `Runtime.sweep` after the rollover; idempotent and
catching up, like it.

A boundary is an instant a billing period began (`subscriptions.period_starts`: the
subscription's start, each rollover, each restart such as an upgrade to another interval).
The invoice of boundary `B`, whose previous boundary is `A`, bills (Stripe's model):

- every subscription charge recorded with `period_start <= B` and not billed yet: the fee of
  the period starting at `B` (in advance; none while trialing), and the prorations made in
  `[A, B)` (in arrears);
- the wallet purchases made in `[A, B)` (flat sessions' fees, session packs), netted by a
  `credits_applied` line; purchases from up to `LATE_COMMIT_SECONDS` before `A` that no
  invoice billed yet come along (a purchase whose transaction committed after its period was
  closed is billed by the next invoice, never lost);
- the payments that bought credits, recorded in `[A, B)` (with the same look-back), netted
  by a `payment_applied` line;
- tax over those lines at the customer's country's rate.

Its `period_start` is `A` (`B` itself for a subscription's first boundary) and its
`period_end` is `B`. A boundary with nothing to bill gets no invoice: a free plan's customer
who bought nothing is not sent empty invoices. An invoice of 0 (say, purchases only, paid
from the wallet) is issued, and is `paid` when finalized.

Exactly once: each customer's boundaries are closed in one transaction that holds its
`billing_cursors` row lock (`FOR UPDATE` on PostgreSQL; SQLite has one writer), reads how
far it was closed, writes the invoices and moves the cursor. A second process waits for the
lock, then finds nothing left. Behind it, `UNIQUE (customer_id, period_end)` refuses a second
invoice for a period, and `invoice_items.reference` a second billing of the same charge or
purchase. Numbers are given afterwards, one draft per transaction (`documents.finalize`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.billing.lines import (
    Charge,
    charge_reference,
    invoice_lines,
    payment_reference,
    purchase_reference,
)
from tollhouse.billing.models import BillingCursor, DocumentKind, Invoice, LineKind
from tollhouse.billing.schemas import CloseReport
from tollhouse.billing.service import documents
from tollhouse.billing.terms import BillingTerms
from tollhouse.catalog import Catalog
from tollhouse.clock import Clock
from tollhouse.customers import Customer
from tollhouse.customers import service as customers
from tollhouse.payments import service as payments
from tollhouse.sessions import service as sessions
from tollhouse.sessions.service import Purchase
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions
from tollhouse.subscriptions.models import Subscription

logger = logging.getLogger(__name__)

LATE_COMMIT_SECONDS = 3600
"""How far before an invoice's period unbilled wallet purchases are still looked for."""


async def close_periods(
    db: Database,
    *,
    catalog: Catalog,
    terms: BillingTerms,
    clock: Clock,
    now: datetime | None = None,
) -> CloseReport:
    """Invoice every boundary reached by `now` (default: the clock) and not yet closed, for
    every customer, then finalize every draft. Safe to run concurrently and
    repeatedly; manages its own transactions (never pass it a session).

    Call it after the rollover (`subscriptions.roll_over`): a boundary is closed once the
    rollover crossed it.
    """
    at = now or clock.now()
    async with db.sessions() as session:
        due = await _customers_due(session, at)
    created: list[str] = []
    closed = 0
    for cid in due:
        try:
            ids = await _close_customer(db, cid, catalog=catalog, terms=terms, clock=clock, now=at)
        except IntegrityError:
            logger.warning("another process closed a period of %s first", cid)
            continue
        closed += 1 if ids else 0
        created += ids
    numbers = await finalize_drafts(db, terms=terms, clock=clock)
    return CloseReport(
        customers=closed, invoices_created=tuple(created), invoices_finalized=tuple(numbers)
    )


async def finalize_drafts(db: Database, *, terms: BillingTerms, clock: Clock) -> list[str]:
    """Number and open every draft, oldest first, one transaction each; returns the numbers
    given. Safe to run concurrently (a draft is numbered once)."""
    async with db.sessions() as session:
        ids = await documents.drafts(session)
    given: list[str] = []
    for invoice_id in ids:
        async with db.transaction() as session:
            view = await documents.finalize(session, invoice_id, terms=terms, clock=clock)
        if view is not None and view.number is not None:
            given.append(view.number)
    return given


async def _customers_due(session: AsyncSession, now: datetime) -> list[str]:
    """Customers whose subscription began a period after their cursor (or never closed).

    Reads the subscriptions table in the same statement as the cursors (one indexed pass over
    both, instead of one query per customer), as `keys.auth` joins `customers`."""
    query = (
        select(Subscription.customer_id)
        .outerjoin(BillingCursor, BillingCursor.customer_id == Subscription.customer_id)
        .where(
            Subscription.current_period_start <= now,
            or_(
                BillingCursor.closed_through.is_(None),
                Subscription.current_period_start > BillingCursor.closed_through,
            ),
        )
        .order_by(Subscription.customer_id)
    )
    return list(await session.scalars(query))


async def _lock_cursor(session: AsyncSession, customer_id: str) -> BillingCursor:
    """The customer's cursor row, created if missing, row-locked until the transaction ends."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(BillingCursor)
        .values(customer_id=customer_id, closed_through=None)
        .on_conflict_do_nothing(index_elements=["customer_id"])
    )
    cursor = await session.scalar(
        select(BillingCursor)
        .where(BillingCursor.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert cursor is not None
    return cursor


async def _close_customer(
    db: Database,
    customer_id: str,
    *,
    catalog: Catalog,
    terms: BillingTerms,
    clock: Clock,
    now: datetime,
) -> list[str]:
    """Close the customer's boundaries up to `now` in one transaction; the drafts' ids."""
    async with db.transaction() as session:
        cursor = await _lock_cursor(session, customer_id)
        after = cursor.closed_through
        boundaries = [
            b
            for b in await subscriptions.period_starts(session, customer_id)
            if b <= now and (after is None or b > after)
        ]
        if not boundaries:
            return []
        customer = await customers.get(session, customer_id)
        created: list[str] = []
        for boundary in boundaries:
            start = boundary if after is None else after
            row = await _draft(
                session, customer, (start, boundary), catalog=catalog, terms=terms, now=clock.now()
            )
            if row is not None:
                created.append(row.id)
            after = boundary
        cursor.closed_through = after
    return created


async def _draft(
    session: AsyncSession,
    customer: Customer,
    period: tuple[datetime, datetime],
    *,
    catalog: Catalog,
    terms: BillingTerms,
    now: datetime,
) -> Invoice | None:
    """The draft invoice of `period` (`[previous boundary, boundary)`), or None when it would
    have no line."""
    start, boundary = period
    charges: Sequence[Charge] = await subscriptions.list_charges(
        session, customer.id, through=boundary
    )
    since = start - timedelta(seconds=LATE_COMMIT_SECONDS)
    purchases: Sequence[Purchase] = await sessions.wallet_purchases(
        session, customer.id, start=since, end=boundary
    )
    paid = await payments.credit_payments(session, customer.id, start=since, end=boundary)
    done = await documents.billed(
        session,
        [charge_reference(c) for c in charges]
        + [purchase_reference(p) for p in purchases]
        + [payment_reference(p) for p in paid],
    )
    charges = [c for c in charges if charge_reference(c) not in done]
    purchases = [p for p in purchases if purchase_reference(p) not in done]
    paid = [p for p in paid if payment_reference(p) not in done]
    rate = terms.tax_rate(customer.country)
    lines = invoice_lines(charges, purchases, paid, country=customer.country, rate=rate)
    if not lines:
        return None
    taxed = any(line.kind == LineKind.TAX for line in lines)
    return await documents.write(
        session,
        kind=DocumentKind.INVOICE,
        customer=customer,
        currency=catalog.currency,
        lines=lines,
        references=[charge_reference(c) for c in charges]
        + [purchase_reference(p) for p in purchases]
        + [payment_reference(p) for p in paid],
        tax_rate=str(rate) if taxed and rate is not None else None,
        now=now,
        period=(start, boundary),
    )
