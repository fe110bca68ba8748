"""Refunds: give a captured charge back to the wallet, with a credit note.

A capture (a model call's, a flat session's fee, a pack's price) is never deleted or
changed: a refund writes a new transfer the other way, a ledger grant of the refunded micros
(issuance -> a new lot, source `refund`, no expiry) keyed `refund:<refund id>`, and documents
it with a credit note (`cn_...`, its own gapless series `CN-000001`, one `refund` line of
minus the amount), which names the invoice that billed the charge when one did.

Writes, in order: (1) one transaction takes the credit note's number (the series' row lock
makes refunds take turns, so two refunds of one hold never both pass the check), checks the
amount against what the capture took less earlier refunds, and stores the refund (`pending`)
and its credit note (`open`) with `credit_note.created`; (2) the ledger grant, idempotent
by its key; (3) one transaction marks the refund `succeeded` and its credit note `paid`. A
crash after (1) leaves a pending refund that a replay of the request, or the sweep
(`complete_refunds`), finishes: the credits are given back exactly once.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.billing.errors import ChargeNotRefundable, RefundExceedsCharge
from tollhouse.billing.lines import Line
from tollhouse.billing.models import (
    DocumentKind,
    Invoice,
    InvoiceStatus,
    LineKind,
    Refund,
    RefundStatus,
)
from tollhouse.billing.schemas import RefundView
from tollhouse.billing.service import documents
from tollhouse.billing.terms import BillingTerms
from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.events import service as events
from tollhouse.ids import new_id
from tollhouse.ledger import HoldStatus, HoldView, Ledger
from tollhouse.ledger import service as ledger_reads
from tollhouse.storage import Database

GRANT_KEY_PREFIX = "refund:"
"""A refund's ledger grant key: this prefix and the refund's id."""
MAX_KEY_LENGTH = 128

_BILLED_AS = {"session_fee": "session", "session_pack": "pack"}
"""A hold's metadata `purpose` -> the `invoice_items` reference prefix of what it paid."""
_ID_OF = {"session_fee": "session_id", "session_pack": "pack_id"}


async def refund(
    db: Database,
    ledger: Ledger,
    *,
    terms: BillingTerms,
    clock: Clock,
    hold_id: str,
    idempotency_key: str,
    amount_micros: int | None = None,
    reason: str = "",
) -> RefundView:
    """Give back `amount_micros` (default: all that is left to refund) of the captured hold
    `hold_id` to its customer's wallet, with a credit note. The same `idempotency_key` again
    answers the first refund (`replayed`), finishing it if a crash interrupted it.

    Raises:
        InvalidInput: empty or oversized key, a non-positive amount.
        HoldNotFound: no such hold.
        ChargeNotRefundable: the hold is not captured (open, voided, expired), or captured 0.
        RefundExceedsCharge: more than the capture took less earlier refunds
            (`refundable_micros` says how much is left).
        IdempotencyKeyReused: the key refunded another hold or amount (`fields`).
    """
    key = _check(idempotency_key, amount_micros)
    try:
        async with db.transaction() as session:
            row, replayed = await _reserve(
                session, terms=terms, clock=clock, hold_id=hold_id, key=key,
                amount_micros=amount_micros, reason=reason,
            )  # fmt: skip
    except IntegrityError:
        # A concurrent request with the same key stored its refund first: answer that one.
        async with db.transaction() as session:
            row, replayed = await _reserve(
                session, terms=terms, clock=clock, hold_id=hold_id, key=key,
                amount_micros=amount_micros, reason=reason,
            )  # fmt: skip
    if row.status == RefundStatus.PENDING:
        await _complete(db, ledger, row, clock=clock)
    async with db.sessions() as session:
        return await _view(session, row.id, replayed=replayed)


async def complete_refunds(db: Database, ledger: Ledger, *, clock: Clock) -> int:
    """Finish the refunds a crash left pending (grant, then mark); returns how many."""
    async with db.sessions() as session:
        pending = list(
            await session.scalars(
                select(Refund)
                .where(Refund.status == RefundStatus.PENDING.value)
                .order_by(Refund.created_at)
            )
        )
    for row in pending:
        await _complete(db, ledger, row, clock=clock)
    return len(pending)


def _check(key: str, amount_micros: int | None) -> str:
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise InvalidInput(
            f"idempotency_key must be 1..{MAX_KEY_LENGTH} characters",
            errors=[{"loc": "idempotency_key", "msg": f"must be 1..{MAX_KEY_LENGTH} characters"}],
        )
    if amount_micros is not None and amount_micros <= 0:
        raise InvalidInput(
            "amount_micros must be positive",
            errors=[{"loc": "amount_micros", "msg": "must be positive"}],
        )
    return key


async def _reserve(
    session: AsyncSession,
    *,
    terms: BillingTerms,
    clock: Clock,
    hold_id: str,
    key: str,
    amount_micros: int | None,
    reason: str,
) -> tuple[Refund, bool]:
    """The refund stored under `key` (replayed), or a new one with its credit note."""
    existing = await session.scalar(select(Refund).where(Refund.idempotency_key == key))
    if existing is not None:
        differ = [
            name
            for name, same in (
                ("hold_id", existing.hold_id == hold_id),
                ("amount_micros", amount_micros in (None, existing.amount_micros)),
            )
            if not same
        ]
        if differ:
            raise IdempotencyKeyReused(
                f"idempotency key {key!r} refunded another charge", fields=differ,
                refund_id=existing.id,
            )  # fmt: skip
        return existing, True
    hold = await ledger_reads.get_hold(session, hold_id)
    if hold.status != HoldStatus.CAPTURED or hold.captured_amount == 0:
        raise ChargeNotRefundable(
            f"hold {hold_id!r} charged nothing to refund ({hold.status})",
            hold_id=hold_id, hold_status=hold.status,
        )  # fmt: skip
    sequence = await documents.take_number(session, DocumentKind.CREDIT_NOTE)  # refunds queue
    refunded = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_micros), 0)).where(Refund.hold_id == hold_id)
    )
    left = hold.captured_amount - int(refunded or 0)
    amount = left if amount_micros is None else amount_micros
    if amount <= 0 or amount > left:
        raise RefundExceedsCharge(
            f"hold {hold_id!r} has {left} micros left to refund; {amount} asked",
            hold_id=hold_id, amount_micros=amount, refundable_micros=left,
        )  # fmt: skip
    now = clock.now()
    customer = await customers.get(session, hold.customer_id)
    credited = await _credited_invoice(session, hold)
    text = reason or _what(hold)
    note = await documents.write(
        session,
        kind=DocumentKind.CREDIT_NOTE,
        customer=customer,
        currency=hold.currency,
        lines=[Line(LineKind.REFUND, f"Refund: {text}"[:500], 1, -amount)],
        references=[],
        tax_rate=None,
        now=now,
        credited_invoice_id=credited,
    )
    await documents.number(session, note, terms=terms, now=now, sequence=sequence)
    note.status = InvoiceStatus.OPEN.value
    row = Refund(
        id=new_id("rf"),
        customer_id=hold.customer_id,
        hold_id=hold_id,
        amount_micros=amount,
        currency=hold.currency,
        reason=reason,
        idempotency_key=key,
        status=RefundStatus.PENDING.value,
        credit_note_id=note.id,
        grant_id=None,
        created_at=now,
        completed_at=None,
    )
    session.add(row)
    await session.flush()
    data = {**(await documents.get_invoice(session, note.id)).event_data(), "refund_id": row.id,
            "hold_id": hold_id}  # fmt: skip
    await events.emit(
        session, customer_id=row.customer_id, type="credit_note.created", data=data, clock=clock
    )
    return row, False


async def _complete(db: Database, ledger: Ledger, row: Refund, *, clock: Clock) -> None:
    """Grant the credits back (idempotent by key), then mark the refund and its note."""
    grant = await ledger.grant(
        row.customer_id,
        row.amount_micros,
        idempotency_key=GRANT_KEY_PREFIX + row.id,
        source="refund",
        description=f"refund {row.id} of hold {row.hold_id}",
        currency=row.currency,
    )
    now = clock.now()
    async with db.transaction() as session:
        marked = await session.execute(
            update(Refund)
            .where(Refund.id == row.id, Refund.status == RefundStatus.PENDING.value)
            .values(status=RefundStatus.SUCCEEDED.value, grant_id=grant.id, completed_at=now)
        )
        if getattr(marked, "rowcount", 0) == 1:
            await session.execute(
                update(Invoice)
                .where(Invoice.id == row.credit_note_id)
                .values(status=InvoiceStatus.PAID.value, paid_at=now)
            )


async def _credited_invoice(session: AsyncSession, hold: HoldView) -> str | None:
    """The invoice that billed what the hold paid for (a session, a pack), if one did."""
    purpose = str(hold.metadata.get("purpose", ""))
    if purpose not in _BILLED_AS:
        return None
    reference = f"{_BILLED_AS[purpose]}:{hold.metadata.get(_ID_OF[purpose])}"
    return (await documents.billed(session, [reference])).get(reference)


def _what(hold: HoldView) -> str:
    """A description of what the hold paid for, from its metadata."""
    meta = hold.metadata
    if meta.get("purpose") == "session_fee":
        return f"session {meta.get('session_id')} ({meta.get('product')})"
    if meta.get("purpose") == "session_pack":
        return f"session pack {meta.get('pack_id')} ({meta.get('product')})"
    if "model" in meta:
        return f"call to {meta['model']}"
    return f"hold {hold.id}"


async def _view(session: AsyncSession, refund_id: str, *, replayed: bool = False) -> RefundView:
    row = await session.get(Refund, refund_id, populate_existing=True)
    assert row is not None, "refunds are never deleted"
    note = await documents.get_invoice(session, row.credit_note_id)
    return RefundView.of(row, note, replayed=replayed)
