"""Models of `client.invoices`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class InvoiceLine(Model):
    """Answered by `GET /v1/invoices`."""

    kind: str
    """`subscription_fee`, `proration_credit`, `proration_charge`, `session_fee`, `session_pack`,
    `credits_applied`, `credit_purchase`, `payment_applied`, `tax`, or `refund` (credit notes).
    """
    description: str
    quantity: int
    unit_amount_micros: int
    amount_micros: int
    """`quantity * unit_amount_micros`; negative is a credit."""
    period_start: datetime | None
    period_end: datetime | None


class Invoice(Model):
    """Answered by `GET /v1/invoices`."""

    id: str
    """`in_...` for an invoice, `cn_...` for a credit note."""
    kind: str
    """`invoice` or `credit_note`."""
    number: str | None
    """`TH-000001` (credit notes `CN-000001`): sequential without gaps; None on a draft."""
    customer_id: str
    status: str
    """`draft`, `open`, `paid`, `void` or `uncollectible`."""
    currency: str
    period_start: datetime | None
    """The previous boundary: start of the usage period billed (None on a credit note)."""
    period_end: datetime | None
    """The boundary the invoice closes; the fee it bills is for the period starting here."""
    subtotal_micros: int
    tax_micros: int
    total_micros: int
    """The sum of the lines: `subtotal_micros + tax_micros`."""
    tax_country: str | None
    tax_rate: str | None
    """The rate applied, a decimal fraction (`"0.19"`); None without tax."""
    customer_name: str
    customer_email: str | None
    credited_invoice_id: str | None
    """Credit notes: the invoice that billed what was refunded, if one did."""
    payment_reference: str | None
    created_at: datetime
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    lines: list[InvoiceLine]


class PeriodClose(Model):
    """Answered by `POST /v1/billing/close`."""

    customers: int
    """Customers with a period closed now."""
    invoices_created: list[str]
    invoices_finalized: list[str]
    """The numbers given now."""
