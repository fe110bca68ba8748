"""Billing errors.

```
TollhouseError
└── BillingError                                   (family marker)
    ├── InvoiceNotFound (404 invoice-not-found)     also a NotFound: unknown id, or another
    │                                               customer's invoice
    ├── InvalidInvoiceTransition (409 invalid-invoice-transition)   also a Conflict; extras:
    │                                               invoice_id, invoice_status, requested
    ├── ChargeNotRefundable (409 charge-not-refundable)   also a Conflict: the hold was not
    │                                               captured (extras: hold_id, hold_status)
    └── RefundExceedsCharge (409 refund-exceeds-charge)   also a Conflict; extras: hold_id,
                                                    amount_micros, refundable_micros
```
An unknown hold is the ledger's `HoldNotFound` (404); a refund key reused for another hold
or amount is `IdempotencyKeyReused` (422).
"""

from __future__ import annotations

from tollhouse.errors import Conflict, NotFound, TollhouseError


class BillingError(TollhouseError):
    """Base of the billing domain's errors."""


class InvoiceNotFound(NotFound, BillingError):
    """No invoice or credit note with that id (or not the caller's)."""

    status, code, title = 404, "invoice-not-found", "Invoice not found"


class InvalidInvoiceTransition(Conflict, BillingError):
    """The document's status does not allow the change asked for (a paid invoice cannot be
    voided, a void one cannot be paid, a credit note follows its refund)."""

    status, code, title = 409, "invalid-invoice-transition", "Invalid invoice transition"


class ChargeNotRefundable(Conflict, BillingError):
    """The hold was not captured: nothing was charged that a refund could give back."""

    status, code, title = 409, "charge-not-refundable", "Charge not refundable"


class RefundExceedsCharge(Conflict, BillingError):
    """The amount is more than the capture took, less what was refunded of it already."""

    status, code, title = 409, "refund-exceeds-charge", "Refund exceeds the charge"
