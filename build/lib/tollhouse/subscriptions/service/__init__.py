"""Subscription services. Lifecycle functions take the caller's `AsyncSession` and never
commit or call the ledger (credits go to an outbox); `roll_over` and `deliver_grants` take
the `Database` and a `Ledger` and run their own short transactions.

```python
from tollhouse.subscriptions import service as subscriptions

async with db.transaction() as session:
    change = await subscriptions.change_plan(session, customer_id, "pro",
                                             catalog=catalog, clock=clock)
await subscriptions.deliver_grants(db, ledger=ledger, clock=clock, customer_id=customer_id)
```
"""

from tollhouse.subscriptions.service.dunning import mark_paid, mark_past_due
from tollhouse.subscriptions.service.invoicing import list_charges, period_starts
from tollhouse.subscriptions.service.lifecycle import (
    ChangeKind,
    PlanChange,
    cancel,
    change_plan,
    create_customer,
    ensure_subscription,
    get_subscription,
    history,
    resume,
    set_payment_method,
)
from tollhouse.subscriptions.service.plans import plans_in_use
from tollhouse.subscriptions.service.quotas import (
    QuotaStatus,
    check_quota,
    current_period,
    enforce_quota,
    quota_usage,
    record_quota_reached,
)
from tollhouse.subscriptions.service.rollover import (
    DeliveryReport,
    RolloverReport,
    deliver_grants,
    roll_over,
)

__all__ = [
    "ChangeKind",
    "DeliveryReport",
    "PlanChange",
    "QuotaStatus",
    "RolloverReport",
    "cancel",
    "change_plan",
    "check_quota",
    "create_customer",
    "current_period",
    "deliver_grants",
    "enforce_quota",
    "ensure_subscription",
    "get_subscription",
    "history",
    "list_charges",
    "mark_paid",
    "mark_past_due",
    "period_starts",
    "plans_in_use",
    "quota_usage",
    "record_quota_reached",
    "resume",
    "roll_over",
    "set_payment_method",
]
