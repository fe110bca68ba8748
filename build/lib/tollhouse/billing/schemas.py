"""What the billing service answers: immutable views of its rows (never ORM objects).
Money in int micros of the document's currency."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollhouse.billing.models import Invoice, InvoiceLine, Refund


@dataclass(frozen=True, slots=True)
class LineView:
    """One line: `amount_micros = quantity * unit_amount_micros`."""

    kind: str
    description: str
    quantity: int
    unit_amount_micros: int
    amount_micros: int
    period_start: datetime | None
    period_end: datetime | None

    @classmethod
    def of(cls, row: InvoiceLine) -> LineView:
        return cls(
            kind=row.kind,
            description=row.description,
            quantity=row.quantity,
            unit_amount_micros=row.unit_amount_micros,
            amount_micros=row.amount_micros,
            period_start=row.period_start,
            period_end=row.period_end,
        )


@dataclass(frozen=True, slots=True)
class InvoiceView:
    """An invoice or a credit note with its lines, in order. `total_micros` is the sum of
    the lines' amounts; `subtotal_micros + tax_micros = total_micros`."""

    id: str
    kind: str
    number: str | None
    customer_id: str
    status: str
    currency: str
    period_start: datetime | None
    period_end: datetime | None
    subtotal_micros: int
    tax_micros: int
    total_micros: int
    tax_country: str | None
    tax_rate: str | None
    customer_name: str
    customer_email: str | None
    credited_invoice_id: str | None
    payment_reference: str | None
    created_at: datetime
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    lines: tuple[LineView, ...]

    @classmethod
    def of(cls, row: Invoice, lines: Sequence[InvoiceLine]) -> InvoiceView:
        """The view of an `invoices` row and its `invoice_lines` rows (any order)."""
        return cls(
            id=row.id,
            kind=row.kind,
            number=row.number,
            customer_id=row.customer_id,
            status=row.status,
            currency=row.currency,
            period_start=row.period_start,
            period_end=row.period_end,
            subtotal_micros=row.subtotal_micros,
            tax_micros=row.tax_micros,
            total_micros=row.total_micros,
            tax_country=row.tax_country,
            tax_rate=row.tax_rate,
            customer_name=row.customer_name,
            customer_email=row.customer_email,
            credited_invoice_id=row.credited_invoice_id,
            payment_reference=row.payment_reference,
            created_at=row.created_at,
            finalized_at=row.finalized_at,
            paid_at=row.paid_at,
            voided_at=row.voided_at,
            marked_uncollectible_at=row.marked_uncollectible_at,
            lines=tuple(LineView.of(line) for line in sorted(lines, key=lambda li: li.position)),
        )

    def event_data(self) -> dict[str, Any]:
        """The payload of its events (`invoice.finalized`, ...): the document without lines,
        times as RFC 3339 strings."""
        return {
            "invoice_id": self.id,
            "kind": self.kind,
            "number": self.number,
            "status": self.status,
            "currency": self.currency,
            "subtotal_micros": self.subtotal_micros,
            "tax_micros": self.tax_micros,
            "total_micros": self.total_micros,
            "period_start": _iso(self.period_start),
            "period_end": _iso(self.period_end),
            "credited_invoice_id": self.credited_invoice_id,
        }


@dataclass(frozen=True, slots=True)
class RefundView:
    """A refund and its credit note."""

    id: str
    customer_id: str
    hold_id: str
    amount_micros: int
    currency: str
    reason: str
    status: str
    """`pending` until the ledger granted the credits back, then `succeeded`."""
    grant_id: str | None
    credit_note: InvoiceView
    created_at: datetime
    completed_at: datetime | None
    replayed: bool = False
    """True on the answer to a refund whose idempotency key was used before: this is the
    first refund, and nothing more was given back."""

    @classmethod
    def of(cls, row: Refund, credit_note: InvoiceView, *, replayed: bool = False) -> RefundView:
        return cls(
            id=row.id,
            customer_id=row.customer_id,
            hold_id=row.hold_id,
            amount_micros=row.amount_micros,
            currency=row.currency,
            reason=row.reason,
            status=row.status,
            grant_id=row.grant_id,
            credit_note=credit_note,
            created_at=row.created_at,
            completed_at=row.completed_at,
            replayed=replayed,
        )


@dataclass(frozen=True, slots=True)
class CloseReport:
    """What one `close_periods` run did."""

    customers: int = 0
    """Customers with at least one period closed by this run."""
    invoices_created: tuple[str, ...] = ()
    """Ids of the drafts this run built."""
    invoices_finalized: tuple[str, ...] = ()
    """Numbers this run gave (drafts of this run, and any a crashed run left)."""


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
