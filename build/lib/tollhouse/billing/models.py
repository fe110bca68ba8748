"""Billing tables: invoices and credit notes, their lines, what each one billed, the number
series, the per-customer close cursor and refunds.

- `invoices`: one row per document. An invoice bills one customer's period (unique
  `customer_id, period_end`); a credit note (`kind = credit_note`) documents a refund. The
  `number` is given once, at finalization, from `billing_counters` in the same transaction.
- `invoice_lines`: the document's lines in order; `amount_micros` is computed once, when the
  line is written, and the document's totals are the sums of its lines.
- `invoice_items`: every source fact a document billed (a subscription charge, a session, a
  pack), unique by `reference`: a fact is billed once, whichever process closes the period.
- `billing_counters`: one row per number series (`invoice`, `credit_note`), holding the last
  number given; incremented under its row lock by the transaction that uses the number.
- `billing_cursors`: per customer, the last period boundary closed (its row lock serializes
  two processes closing one customer's periods).
- `refunds`: a captured ledger hold given back to the wallet, with its credit note.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime


class DocumentKind(StrEnum):
    """What an `invoices` row is."""

    INVOICE = "invoice"
    """The bill of a period (`TH-000001`)."""
    CREDIT_NOTE = "credit_note"
    """A refund's document, negative (`CN-000001`), in its own number series."""


class InvoiceStatus(StrEnum):
    """Where a document is in its life (Stripe's invoice statuses)."""

    DRAFT = "draft"
    """Built by the period close, not numbered yet; finalized by the same job."""
    OPEN = "open"
    """Finalized and numbered; awaiting payment (a credit note: its refund is under way)."""
    PAID = "paid"
    """A payment was recorded (a zero invoice is paid when finalized; a credit note once its
    credits are back in the wallet)."""
    VOID = "void"
    """Canceled after finalization; keeps its number."""
    UNCOLLECTIBLE = "uncollectible"
    """Not expected to be paid; may still be paid or voided."""


class LineKind(StrEnum):
    """What an invoice line bills."""

    SUBSCRIPTION_FEE = "subscription_fee"
    """A plan's price for a period (a pending subscription charge)."""
    PRORATION_CREDIT = "proration_credit"
    """Negative: unused time on the old plan after an upgrade (a pending charge)."""
    PRORATION_CHARGE = "proration_charge"
    """Remaining time on the new plan after an upgrade (a pending charge)."""
    SESSION_FEE = "session_fee"
    """Flat sessions paid from the wallet, grouped per product and fee."""
    SESSION_PACK = "session_pack"
    """Session packs bought from the wallet, grouped per product, size and price."""
    CREDITS_APPLIED = "credits_applied"
    """Negative: what the wallet already paid of the lines above (sessions, packs)."""
    CREDIT_PURCHASE = "credit_purchase"
    """Credits bought with money (a credit pack, an auto top-up, a manual payment), one line
    per payment."""
    PAYMENT_APPLIED = "payment_applied"
    """Negative: what the payments of the credit purchases above already paid."""
    TAX = "tax"
    """The customer's country's rate over the lines above, rounded once."""
    REFUND = "refund"
    """Negative, on a credit note: credits given back."""


class RefundStatus(StrEnum):
    """A refund's progress."""

    PENDING = "pending"
    """Recorded with its credit note; the credits are not confirmed back in the wallet."""
    SUCCEEDED = "succeeded"
    """The ledger granted the credits back."""


def _autoincrement() -> BigInteger:
    return BigInteger().with_variant(Integer(), "sqlite")


class Invoice(Base):
    """An invoice or a credit note. Money in micros of `currency`."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("customer_id", "period_end"),
        UniqueConstraint("kind", "sequence"),
        Index("ix_invoices_customer_id_id", "customer_id", "id"),
        Index("ix_invoices_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """`in_<22 base62>` for an invoice, `cn_<22 base62>` for a credit note."""
    kind: Mapped[str] = mapped_column(String(16))
    """A `DocumentKind` value."""
    customer_id: Mapped[str] = mapped_column(String(32), ForeignKey("customers.id"))
    """Who is billed (`cus_...`)."""
    status: Mapped[str] = mapped_column(String(16))
    """An `InvoiceStatus` value."""
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    """The number in its kind's series (1, 2, ...; no gaps); NULL while a draft."""
    number: Mapped[str | None] = mapped_column(String(48), unique=True)
    """`sequence` with the series' prefix, six digits at least (`TH-000001`); NULL while a
    draft."""
    currency: Mapped[str] = mapped_column(String(3))
    """ISO 4217, lowercase (the catalog's)."""
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Invoices: start of the period whose usage it bills (the previous boundary; equal to
    `period_end` on the first invoice of a subscription). NULL on credit notes."""
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Invoices: the boundary it closes (exclusive end of the usage period, start of the
    period whose fee it bills in advance). NULL on credit notes."""
    subtotal_micros: Mapped[int] = mapped_column(BigInteger)
    """Sum of the lines but tax."""
    tax_micros: Mapped[int] = mapped_column(BigInteger)
    """Sum of the tax lines (0 or one line)."""
    total_micros: Mapped[int] = mapped_column(BigInteger)
    """Sum of every line: `subtotal_micros + tax_micros`."""
    tax_country: Mapped[str | None] = mapped_column(String(2))
    """The customer's country (ISO 3166-1 alpha-2) when the document was built."""
    tax_rate: Mapped[str | None] = mapped_column(String(16))
    """The rate applied (a decimal string, `0.19`); NULL when no rate applied."""
    customer_name: Mapped[str] = mapped_column(String(200))
    """Bill-to name when the document was built."""
    customer_email: Mapped[str | None] = mapped_column(String(320))
    """Bill-to email when the document was built."""
    credited_invoice_id: Mapped[str | None] = mapped_column(String(32))
    """Credit notes: the invoice that billed what was refunded, when there is one."""
    payment_reference: Mapped[str | None] = mapped_column(String(200))
    """What paid it (a payment id, a bank transfer's reference), as `mark_paid` was told."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When it was built (UTC)."""
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it was numbered (draft -> open)."""
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it became `paid` (a credit note: when its credits were back in the wallet)."""
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it became `void`."""
    marked_uncollectible_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it became `uncollectible`."""


class InvoiceLine(Base):
    """One line: `amount_micros = quantity * unit_amount_micros`, computed once."""

    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    id: Mapped[int] = mapped_column(_autoincrement(), primary_key=True, autoincrement=True)
    """Insertion order."""
    invoice_id: Mapped[str] = mapped_column(String(32), ForeignKey("invoices.id"))
    """The document."""
    position: Mapped[int] = mapped_column(Integer)
    """0, 1, ...: the line's place on the document."""
    kind: Mapped[str] = mapped_column(String(32))
    """A `LineKind` value."""
    description: Mapped[str] = mapped_column(String(500))
    """Human text, as printed."""
    quantity: Mapped[int] = mapped_column(BigInteger)
    """How many units (sessions, packs; 1 for a fee, a proration, tax)."""
    unit_amount_micros: Mapped[int] = mapped_column(BigInteger)
    """Signed micros per unit."""
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    """Signed micros: `quantity * unit_amount_micros`; negative is a credit."""
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The time the line covers, when it covers one (fees, prorations)."""
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())


class InvoiceItem(Base):
    """A source fact a document billed; `reference` is unique, so a fact is billed once."""

    __tablename__ = "invoice_items"

    id: Mapped[int] = mapped_column(_autoincrement(), primary_key=True, autoincrement=True)
    """Insertion order."""
    invoice_id: Mapped[str] = mapped_column(String(32), ForeignKey("invoices.id"), index=True)
    """The document that billed it."""
    reference: Mapped[str] = mapped_column(String(240), unique=True)
    """`charge:<subscription charge key>`, `session:<ses_...>`, `pack:<spk_...>`."""


class BillingCounter(Base):
    """A number series: the last number given. Rows `invoice` and `credit_note` exist from
    the migration on."""

    __tablename__ = "billing_counters"

    series: Mapped[str] = mapped_column(String(16), primary_key=True)
    """A `DocumentKind` value."""
    last_number: Mapped[int] = mapped_column(BigInteger)
    """The last number given (0 before the first)."""


class BillingCursor(Base):
    """How far a customer's periods are closed."""

    __tablename__ = "billing_cursors"

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """The customer (`cus_...`)."""
    closed_through: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The last boundary closed (UTC); NULL before the first."""


class Refund(Base):
    """Credits given back for a captured ledger hold; documented by a credit note."""

    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """`rf_<22 base62>`."""
    customer_id: Mapped[str] = mapped_column(String(32), ForeignKey("customers.id"))
    """Whose wallet gets the credits."""
    hold_id: Mapped[str] = mapped_column(String(32), index=True)
    """The captured hold whose capture is refunded (a session fee, a pack, a call)."""
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    """Micros given back (> 0, at most what the capture took less earlier refunds)."""
    currency: Mapped[str] = mapped_column(String(3))
    """ISO 4217, lowercase (the hold's)."""
    reason: Mapped[str] = mapped_column(String(500))
    """Why, as the operator gave it (printed on the credit note)."""
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    """The operator's key: the same key again answers this refund."""
    status: Mapped[str] = mapped_column(String(16))
    """A `RefundStatus` value."""
    credit_note_id: Mapped[str] = mapped_column(String(32), ForeignKey("invoices.id"))
    """The credit note (`cn_...`)."""
    grant_id: Mapped[str | None] = mapped_column(String(32))
    """The ledger grant that gave the credits back, once it did."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the refund was recorded (UTC)."""
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the ledger confirmed the grant (`succeeded`)."""
