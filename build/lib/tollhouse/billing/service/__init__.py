"""Billing services: close periods into invoices, read them, change their status, refund.

`close_periods`, `refund`, `complete_refunds`, `document_payment_refunds` and
`apply_subscription_payments` take the `Database` (and the `Ledger`) and
run their own short transactions; every other function takes the caller's `AsyncSession`
and never commits.

```python
from tollhouse.billing import service as billing

report = await billing.close_periods(db, catalog=catalog, terms=terms, clock=clock)
async with db.transaction() as session:
    await billing.mark_paid(session, invoice_id, clock=clock, payment_reference="pi_123")
```
"""

from tollhouse.billing.service.close import close_periods
from tollhouse.billing.service.documents import (
    MAX_PAGE,
    get_invoice,
    list_invoices,
    mark_paid,
    mark_uncollectible,
    void,
)
from tollhouse.billing.service.from_payments import (
    apply_subscription_payments,
    document_payment_refunds,
)
from tollhouse.billing.service.refunds import complete_refunds, refund

__all__ = [
    "MAX_PAGE",
    "apply_subscription_payments",
    "close_periods",
    "complete_refunds",
    "document_payment_refunds",
    "get_invoice",
    "list_invoices",
    "mark_paid",
    "mark_uncollectible",
    "refund",
    "void",
]
