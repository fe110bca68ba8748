"""Billing: invoices per customer and period, their numbers, tax, HTML and PDF, and refunds
as credit notes.

```python
from tollhouse.billing import BillingTerms, render_html, render_pdf
from tollhouse.billing import service as billing

terms = BillingTerms(tax_rates={"DE": Decimal("0.19")})
await billing.close_periods(db, catalog=catalog, terms=terms, clock=clock)  # after roll_over
async with db.sessions() as session:
    invoice = (await billing.list_invoices(session, customer_id=customer_id))[0]
pdf = await render_pdf(invoice, issuer="Acme AI")
```

Invariants:
- An invoice bills one customer's period: at most one per `(customer, period_end)`, and each
  subscription charge and wallet purchase is billed by at most one invoice
  (`invoice_items.reference` is unique).
- Numbers are sequential without gaps per series (`TH-000001`..., credit notes
  `CN-000001`...): given at finalization from a counter row updated in the same transaction.
- Money is int micros; every line's `amount = quantity * unit_amount`, computed once; a
  document's `total` is the sum of its lines and `subtotal + tax = total`; tax is its own
  line, rounded once, half to even (`terms`).
- Statuses move `draft -> open -> paid | void | uncollectible` (`uncollectible -> paid |
  void`); `invoice.finalized`, `invoice.paid`, ... are emitted in the same transaction.
- A refund never changes a ledger entry: it grants the credits back (source `refund`) and is
  documented by a credit note, once per idempotency key.

May import: catalog, customers, events, ledger (service, writer), subscriptions, sessions
(services; the period close also reads the subscriptions table with its cursors), storage,
clock, errors. Never an edge (api, cli, gateway, server).
"""

from tollhouse.billing.errors import (
    BillingError,
    ChargeNotRefundable,
    InvalidInvoiceTransition,
    InvoiceNotFound,
    RefundExceedsCharge,
)
from tollhouse.billing.models import (
    DocumentKind,
    InvoiceStatus,
    LineKind,
    RefundStatus,
)
from tollhouse.billing.render import render_html, render_pdf
from tollhouse.billing.schemas import CloseReport, InvoiceView, LineView, RefundView
from tollhouse.billing.terms import BillingTerms

__all__ = [
    "BillingError",
    "BillingTerms",
    "ChargeNotRefundable",
    "CloseReport",
    "DocumentKind",
    "InvalidInvoiceTransition",
    "InvoiceNotFound",
    "InvoiceStatus",
    "InvoiceView",
    "LineKind",
    "LineView",
    "RefundExceedsCharge",
    "RefundStatus",
    "RefundView",
    "render_html",
    "render_pdf",
]
