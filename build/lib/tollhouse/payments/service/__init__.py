"""Payments services: records (a payment's life), manual payments, refunds, checkout, Stripe
events, subscription sync, auto top-up, reads. `tollhouse.payments.Payments` puts them
together for a process; reads are plain functions over an `AsyncSession`:

```python
from tollhouse.payments import service as payments

async with db.transaction() as session:
    page = await payments.list_payments(session, customer_id="cus_...", limit=20)
```
"""

from tollhouse.payments.service.checkout import Item, get_checkout
from tollhouse.payments.service.reads import (
    CREDIT_KINDS,
    MAX_PAGE,
    completed_refunds,
    credit_payments,
    get_payment,
    list_payments,
    require_payment_method,
    subscription_payments,
)
from tollhouse.payments.service.records import PURCHASED_PRIORITY, Context
from tollhouse.payments.service.refunds import share
from tollhouse.payments.service.top_ups import get_rule

__all__ = [
    "CREDIT_KINDS",
    "MAX_PAGE",
    "PURCHASED_PRIORITY",
    "Context",
    "Item",
    "completed_refunds",
    "credit_payments",
    "get_checkout",
    "get_payment",
    "get_rule",
    "list_payments",
    "require_payment_method",
    "share",
    "subscription_payments",
]
