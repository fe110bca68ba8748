"""What billing makes of the payments domain's facts: credit notes for refunded payments,
and invoices paid by a provider's subscription payments.

**Refunded payments.** The second way money goes back, documented like the first
(`refunds`, a captured charge given back to the wallet).

A payment's refund step (`payments`: an operator's refund of a manual payment, or Stripe's
`charge.refunded`) returns money to the customer and takes back the credits it bought as far
as the wallet still holds them. Billing documents each completed step with a credit note:
one `refund` line of minus the money refunded, naming the invoice that listed the payment
(its `credit_purchase` line) when one did, numbered in the credit notes' gapless series and
`paid` at once (the money has gone back), with `credit_note.created`.

Exactly once: the note bills the reference `payment_refund:<step id>` (`invoice_items` is
unique by reference), so two processes, or the sweep and the request that refunded, write
one note. `document_payment_refunds` runs in `Runtime.sweep` over the steps completed in the
last `LOOKBACK`, and right after a refund is made through the API.

**Subscription payments.** When the provider bills a plan itself (a Stripe subscription:
`invoice.paid` records a `subscription` payment), tollhouse's invoice of the period bills the
same fee. `apply_subscription_payments` marks the customer's oldest open (or uncollectible)
invoice with a total above zero `paid` by each such payment not applied yet, oldest payment
first, with the provider's invoice id as `payment_reference` (Stripe applies a customer's
payments to its invoices in the same order). A payment that finds no open invoice (the
provider's event came before the period's close) waits for the next sweep. Applied once:
the invoice bills the reference `payment:<id>`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.billing.lines import Line, payment_reference
from tollhouse.billing.models import DocumentKind, Invoice, InvoiceItem, InvoiceStatus, LineKind
from tollhouse.billing.service import documents
from tollhouse.billing.terms import BillingTerms
from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.events import service as events
from tollhouse.payments import PaymentView, RefundView
from tollhouse.payments import service as payments
from tollhouse.storage import Database

logger = logging.getLogger(__name__)

LOOKBACK = timedelta(days=7)
"""How far back refund steps and subscription payments are looked for: a server down longer
than this handles the older ones only if run with a larger `lookback`."""


def refund_reference(step: RefundView) -> str:
    """The `invoice_items` reference that marks a payment's refund step documented."""
    return f"payment_refund:{step.id}"


async def document_payment_refunds(
    db: Database, *, terms: BillingTerms, clock: Clock, lookback: timedelta = LOOKBACK
) -> list[str]:
    """Write a credit note for every payment refund step completed in the last `lookback`
    that has none; returns the new notes' numbers. Safe to run concurrently and repeatedly;
    manages its own transactions."""
    async with db.sessions() as session:
        steps = await payments.completed_refunds(session, since=clock.now() - lookback)
        done = await documents.billed(session, [refund_reference(step) for step, _ in steps])
    numbers: list[str] = []
    for step, payment in steps:
        if refund_reference(step) in done:
            continue
        try:
            async with db.transaction() as session:
                number = await _credit_note(session, step, payment, terms=terms, clock=clock)
        except IntegrityError:
            logger.info("another process documented refund %s first", step.id)
            continue
        if number is not None:
            numbers.append(number)
    return numbers


async def _credit_note(
    session: AsyncSession,
    step: RefundView,
    payment: PaymentView,
    *,
    terms: BillingTerms,
    clock: Clock,
) -> str | None:
    """The step's credit note, numbered and paid; None if another process wrote it while
    this one waited for the series' lock."""
    sequence = await documents.take_number(session, DocumentKind.CREDIT_NOTE)  # notes queue
    reference = refund_reference(step)
    if await documents.billed(session, [reference]):
        return None
    listed = payment_reference(payment)
    credited = (await documents.billed(session, [listed])).get(listed)
    what = payment.item or payment.kind
    now = clock.now()
    note = await documents.write(
        session,
        kind=DocumentKind.CREDIT_NOTE,
        customer=await customers.get(session, payment.customer_id),
        currency=payment.currency,
        lines=[
            Line(
                LineKind.REFUND, f"Refund of payment {payment.id} ({what})", 1, -step.amount_micros
            )
        ],
        references=[reference],
        tax_rate=None,
        now=now,
        credited_invoice_id=credited,
    )
    await documents.number(session, note, terms=terms, now=now, sequence=sequence)
    note.status, note.paid_at = InvoiceStatus.PAID.value, now
    view = await documents.get_invoice(session, note.id)
    await events.emit(
        session,
        customer_id=payment.customer_id,
        type="credit_note.created",
        data={**view.event_data(), "payment_id": payment.id, "payment_refund_id": step.id},
        clock=clock,
    )
    return view.number


async def apply_subscription_payments(
    db: Database, *, clock: Clock, lookback: timedelta = LOOKBACK
) -> list[str]:
    """Mark invoices paid by the provider's subscription payments recorded in the last
    `lookback` and not applied yet; returns the invoices marked. Safe to run concurrently
    and repeatedly; manages its own transactions."""
    async with db.sessions() as session:
        paid = await payments.subscription_payments(session, since=clock.now() - lookback)
        done = await documents.billed(session, [payment_reference(p) for p in paid])
    marked: list[str] = []
    for payment in paid:
        if payment_reference(payment) in done:
            continue
        try:
            async with db.transaction() as session:
                invoice_id = await _apply(session, payment, clock=clock)
        except IntegrityError:
            logger.info("another process applied payment %s first", payment.id)
            continue
        if invoice_id is not None:
            marked.append(invoice_id)
    return marked


async def _apply(session: AsyncSession, payment: PaymentView, *, clock: Clock) -> str | None:
    """Mark the customer's oldest unpaid invoice paid by `payment`; its id, or None."""
    invoice_id = await session.scalar(
        select(Invoice.id)
        .where(
            Invoice.customer_id == payment.customer_id,
            Invoice.kind == DocumentKind.INVOICE.value,
            Invoice.status.in_([InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value]),
            Invoice.total_micros > 0,
        )
        .order_by(Invoice.sequence)
        .limit(1)
    )
    if invoice_id is None:
        return None
    session.add(InvoiceItem(invoice_id=invoice_id, reference=payment_reference(payment)))
    await session.flush()  # a second process applying it fails here
    await documents.mark_paid(
        session, invoice_id, clock=clock, payment_reference=payment.provider_ref
    )
    return invoice_id
