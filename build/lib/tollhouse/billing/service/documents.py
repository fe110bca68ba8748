"""Invoices and credit notes in the database: write one, number it, read, list, and the
status changes an operator (or a payment) makes.

Functions take the caller's `AsyncSession` and never commit: a status change, its event and
(when finalizing) the number it takes commit together or not at all.

Numbers are gapless per series: `take_number` increments the series' counter row in the
caller's transaction (the UPDATE row-locks it on PostgreSQL until the commit; SQLite has one
writer), so a transaction that rolls back gives its number back, and two never get the same.
A sequence would skip the numbers of rolled-back transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.billing.errors import InvalidInvoiceTransition, InvoiceNotFound
from tollhouse.billing.lines import Line
from tollhouse.billing.models import (
    BillingCounter,
    DocumentKind,
    Invoice,
    InvoiceItem,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
)
from tollhouse.billing.schemas import InvoiceView
from tollhouse.billing.terms import BillingTerms, format_number
from tollhouse.clock import Clock
from tollhouse.customers import Customer
from tollhouse.errors import InvalidInput
from tollhouse.events import service as events
from tollhouse.ids import new_id

MAX_PAGE = 500
"""Largest `limit` `list_invoices` accepts."""

_ID_PREFIX = {DocumentKind.INVOICE: "in", DocumentKind.CREDIT_NOTE: "cn"}


async def take_number(session: AsyncSession, kind: DocumentKind) -> int:
    """The next number of `kind`'s series (1, 2, ...), taken in the caller's transaction:
    given back if it rolls back. Holds the series' row lock until the transaction ends."""
    await session.execute(
        update(BillingCounter)
        .where(BillingCounter.series == kind.value)
        .values(last_number=BillingCounter.last_number + 1)
    )
    number = await session.scalar(
        select(BillingCounter.last_number).where(BillingCounter.series == kind.value)
    )
    assert number is not None, "the migration seeds every series"
    return number


async def write(
    session: AsyncSession,
    *,
    kind: DocumentKind,
    customer: Customer,
    currency: str,
    lines: Sequence[Line],
    references: Sequence[str],
    tax_rate: str | None,
    now: datetime,
    period: tuple[datetime, datetime] | None = None,
    credited_invoice_id: str | None = None,
) -> Invoice:
    """Insert a draft document with `lines` (in order) and the `references` of what it
    bills; totals are the sums of the lines. Flushed.

    Raises:
        IntegrityError: the customer's period already has an invoice, or a reference was
            billed already (the caller's transaction is then unusable).
    """
    tax = sum(line.amount_micros for line in lines if line.kind == LineKind.TAX)
    total = sum(line.amount_micros for line in lines)
    row = Invoice(
        id=new_id(_ID_PREFIX[kind]),
        kind=kind.value,
        customer_id=customer.id,
        status=InvoiceStatus.DRAFT.value,
        sequence=None,
        number=None,
        currency=currency,
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
        subtotal_micros=total - tax,
        tax_micros=tax,
        total_micros=total,
        tax_country=customer.country,
        tax_rate=tax_rate,
        customer_name=customer.name,
        customer_email=customer.email,
        credited_invoice_id=credited_invoice_id,
        payment_reference=None,
        created_at=now,
        finalized_at=None,
        paid_at=None,
        voided_at=None,
        marked_uncollectible_at=None,
    )
    session.add(row)
    await session.flush()  # the invoice first: a period closed twice fails here
    session.add_all(
        InvoiceLine(
            invoice_id=row.id,
            position=position,
            kind=line.kind.value,
            description=line.description,
            quantity=line.quantity,
            unit_amount_micros=line.unit_amount_micros,
            amount_micros=line.amount_micros,
            period_start=line.period_start,
            period_end=line.period_end,
        )
        for position, line in enumerate(lines)
    )
    session.add_all(InvoiceItem(invoice_id=row.id, reference=ref) for ref in references)
    await session.flush()
    return row


async def number(
    session: AsyncSession,
    row: Invoice,
    *,
    terms: BillingTerms,
    now: datetime,
    sequence: int | None = None,
) -> None:
    """Give the draft `row` its series' next number (or `sequence`, a number the caller took
    in this transaction) and mark it finalized; the caller sets its status."""
    kind = DocumentKind(row.kind)
    row.sequence = await take_number(session, kind) if sequence is None else sequence
    row.number = format_number(terms.prefix(kind), row.sequence)
    row.finalized_at = now


async def finalize(
    session: AsyncSession, invoice_id: str, *, terms: BillingTerms, clock: Clock
) -> InvoiceView | None:
    """Number a draft invoice and open it (draft -> open), with its `invoice.finalized`
    event; one whose total is 0 has nothing to collect and is `paid` at once (Stripe does
    the same), with `invoice.paid` too. None when it is no longer a draft (another process
    finalized it).

    The draft is claimed by a conditional UPDATE before anything is read: it waits for a
    concurrent finalizer's row lock (PostgreSQL) or write lock (SQLite, where a read takes no
    lock), then finds no draft; so a draft is numbered once."""
    now = clock.now()
    claimed = await session.execute(
        update(Invoice)
        .where(Invoice.id == invoice_id, Invoice.status == InvoiceStatus.DRAFT.value)
        .values(status=InvoiceStatus.OPEN.value)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    row = await _load(session, invoice_id)
    assert row is not None
    await number(session, row, terms=terms, now=now)
    if row.total_micros == 0:
        row.status, row.paid_at = InvoiceStatus.PAID.value, now
    view = await _view(session, row)
    await events.emit(
        session,
        customer_id=row.customer_id,
        type="invoice.finalized",
        data=view.event_data(),
        clock=clock,
    )
    if row.status == InvoiceStatus.PAID:
        await events.emit(
            session, customer_id=row.customer_id, type="invoice.paid", data=view.event_data(),
            clock=clock,
        )  # fmt: skip
    return view


async def drafts(session: AsyncSession) -> list[str]:
    """Ids of every draft, oldest first."""
    query = select(Invoice.id).where(Invoice.status == InvoiceStatus.DRAFT.value)
    return list(await session.scalars(query.order_by(Invoice.created_at, Invoice.id)))


async def billed(session: AsyncSession, references: Sequence[str]) -> dict[str, str]:
    """Which of `references` a document billed already: reference -> invoice id."""
    if not references:
        return {}
    rows = await session.execute(
        select(InvoiceItem.reference, InvoiceItem.invoice_id).where(
            InvoiceItem.reference.in_(list(references))
        )
    )
    return {reference: invoice_id for reference, invoice_id in rows}


async def get_invoice(
    session: AsyncSession, invoice_id: str, *, customer_id: str | None = None
) -> InvoiceView:
    """One invoice or credit note with its lines. Given `customer_id`, another customer's
    document is not found (no existence oracle).

    Raises:
        InvoiceNotFound: unknown id, or another customer's.
    """
    row = await _load(session, invoice_id)
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise InvoiceNotFound(f"no invoice {invoice_id!r}", invoice_id=invoice_id)
    return await _view(session, row)


async def list_invoices(
    session: AsyncSession,
    *,
    customer_id: str | None = None,
    kind: DocumentKind | None = None,
    status: InvoiceStatus | None = None,
    limit: int = 50,
    before: str | None = None,
) -> list[InvoiceView]:
    """Invoices and credit notes, newest first (by id), with their lines: one customer's, or
    everyone's when `customer_id` is None. Page with `before` = the last id of a page.

    Raises:
        InvalidInput: `limit` outside 1..`MAX_PAGE`.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_PAGE}",
            errors=[{"loc": "limit", "msg": f"must be between 1 and {MAX_PAGE}"}],
        )
    query = select(Invoice).order_by(Invoice.id.desc()).limit(limit)
    if customer_id is not None:
        query = query.where(Invoice.customer_id == customer_id)
    if kind is not None:
        query = query.where(Invoice.kind == kind.value)
    if status is not None:
        query = query.where(Invoice.status == status.value)
    if before is not None:
        query = query.where(Invoice.id < before)
    rows = list(await session.scalars(query))
    lines = await _lines(session, [row.id for row in rows])
    return [InvoiceView.of(row, lines.get(row.id, [])) for row in rows]


_ALLOWED = {
    InvoiceStatus.PAID: {InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE},
    InvoiceStatus.VOID: {InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE},
    InvoiceStatus.UNCOLLECTIBLE: {InvoiceStatus.OPEN},
}
"""Status -> the statuses it may be reached from (Stripe's invoice lifecycle: a paid or void
invoice is final; an uncollectible one may still be paid or voided)."""

_EVENT = {
    InvoiceStatus.PAID: "invoice.paid",
    InvoiceStatus.VOID: "invoice.voided",
    InvoiceStatus.UNCOLLECTIBLE: "invoice.marked_uncollectible",
}


async def mark_paid(
    session: AsyncSession,
    invoice_id: str,
    *,
    clock: Clock,
    payment_reference: str | None = None,
) -> InvoiceView:
    """Record that an open (or uncollectible) invoice was paid, with `invoice.paid`; for
    the payments domain (a Stripe payment, a bank transfer) and operators. Idempotent: a
    paid invoice is answered as it is.

    Raises:
        InvoiceNotFound: unknown id.
        InvalidInvoiceTransition: a draft, a void invoice, or a credit note.
    """
    return await _move(
        session, invoice_id, InvoiceStatus.PAID, clock=clock, reference=payment_reference
    )


async def void(session: AsyncSession, invoice_id: str, *, clock: Clock) -> InvoiceView:
    """Void an open or uncollectible invoice (it keeps its number), with `invoice.voided`.
    Idempotent.

    Raises:
        InvoiceNotFound: unknown id.
        InvalidInvoiceTransition: a draft, a paid invoice, or a credit note.
    """
    return await _move(session, invoice_id, InvoiceStatus.VOID, clock=clock)


async def mark_uncollectible(
    session: AsyncSession, invoice_id: str, *, clock: Clock
) -> InvoiceView:
    """Mark an open invoice as not expected to be paid, with `invoice.marked_uncollectible`.
    Idempotent.

    Raises:
        InvoiceNotFound: unknown id.
        InvalidInvoiceTransition: not open, or a credit note.
    """
    return await _move(session, invoice_id, InvoiceStatus.UNCOLLECTIBLE, clock=clock)


async def _move(
    session: AsyncSession,
    invoice_id: str,
    target: InvoiceStatus,
    *,
    clock: Clock,
    reference: str | None = None,
) -> InvoiceView:
    """Change an invoice's status by a conditional UPDATE (so two concurrent changes apply
    once, on either store), then read it back."""
    now = clock.now()
    stamped: dict[str, datetime | str | None] = {"marked_uncollectible_at": now}
    if target == InvoiceStatus.PAID:
        stamped = {"paid_at": now, "payment_reference": reference}
    elif target == InvoiceStatus.VOID:
        stamped = {"voided_at": now}
    moved = await session.execute(
        update(Invoice)
        .where(
            Invoice.id == invoice_id,
            Invoice.kind == DocumentKind.INVOICE.value,
            Invoice.status.in_([status.value for status in _ALLOWED[target]]),
        )
        .values(status=target.value, **stamped)
    )
    row = await _load(session, invoice_id)
    if row is None:
        raise InvoiceNotFound(f"no invoice {invoice_id!r}", invoice_id=invoice_id)
    view = await _view(session, row)
    if getattr(moved, "rowcount", 0) == 1:
        await events.emit(
            session, customer_id=row.customer_id, type=_EVENT[target], data=view.event_data(),
            clock=clock,
        )  # fmt: skip
        return view
    if row.kind == DocumentKind.INVOICE and row.status == target:
        return view  # already there: answered as it is
    what = (
        "a credit note follows its refund"
        if row.kind != DocumentKind.INVOICE
        else f"a {row.status} invoice cannot become {target.value}"
    )
    raise InvalidInvoiceTransition(
        f"{row.number or row.id}: {what}",
        invoice_id=row.id, invoice_status=row.status, requested=target.value,
    )  # fmt: skip


async def _load(session: AsyncSession, invoice_id: str) -> Invoice | None:
    query = select(Invoice).where(Invoice.id == invoice_id)
    return await session.scalar(query.execution_options(populate_existing=True))


async def _lines(session: AsyncSession, invoice_ids: Sequence[str]) -> dict[str, list[InvoiceLine]]:
    if not invoice_ids:
        return {}
    rows = await session.scalars(
        select(InvoiceLine).where(InvoiceLine.invoice_id.in_(list(invoice_ids)))
    )
    found: dict[str, list[InvoiceLine]] = {}
    for line in rows:
        found.setdefault(line.invoice_id, []).append(line)
    return found


async def _view(session: AsyncSession, row: Invoice) -> InvoiceView:
    await session.flush()
    lines = await _lines(session, [row.id])
    return InvoiceView.of(row, lines.get(row.id, []))
