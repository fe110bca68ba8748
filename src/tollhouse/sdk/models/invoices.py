"""Models of `client.invoices`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class InvoiceLine(Model):
    """Answered by `GET /v1/invoices`."""

    kind: str
    description: str
    quantity: int
    unit_amount_micros: int
    amount_micros: int
    period_start: datetime | None
    period_end: datetime | None


class Invoice(Model):
    """Answered by `GET /v1/invoices`."""

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
    lines: list[InvoiceLine]


class PeriodClose(Model):
    """Answered by `POST /v1/billing/close`."""

    customers: int
    invoices_created: list[str]
    invoices_finalized: list[str]
