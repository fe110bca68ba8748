"""Subscriptions: a customer's plan over billing periods, quotas and the credits a plan
includes.

Invariants:
- One subscription per customer (`customer_id` unique); `customers.plan` always mirrors
  `subscriptions.plan` (the gateway reads the customer row).
- Periods are calendar months (or years) cut at local midnight of the anchor day in the
  subscription's time zone; the anchor day clamps to short months and stays (31 -> Feb 28 ->
  Mar 31). `current_period_end` of one period is the next period's start.
- Every change writes one or more `subscription_history` rows (append-only); every row
  update is conditional on `version` (optimistic concurrency) and row-locked on PostgreSQL.
- A boundary is rolled once: a period's fee line, included credits and carried-over credits
  each have a unique idempotency key, are written atomically with the period advance, and
  reach the ledger through the `subscription_grants` outbox with the same key; a rerun or a
  concurrent run never grants twice and a crash never loses a grant.
- Money is int micros; prorations follow Stripe's model, each line rounded once, half even.
- Quota usage is computed from the immutable usage events of the current period (sum/count
  for counters, max for level meters), never from a stored counter.
- Lifecycle services never commit and never call the ledger; `roll_over`/`deliver_grants`
  own their transactions.
"""

from tollhouse.subscriptions import service
from tollhouse.subscriptions.errors import (
    InvalidPlanChange,
    QuotaExceeded,
    SubscriptionCanceled,
    SubscriptionError,
    SubscriptionNotFound,
)
from tollhouse.subscriptions.models import (
    ChargeKind,
    GrantKind,
    HistoryEvent,
    Subscription,
    SubscriptionCharge,
    SubscriptionGrant,
    SubscriptionHistory,
    SubscriptionStatus,
)
from tollhouse.subscriptions.periods import next_period, period_bounds
from tollhouse.subscriptions.proration import Proration, prorate
from tollhouse.subscriptions.service import (
    DeliveryReport,
    PlanChange,
    QuotaStatus,
    RolloverReport,
    cancel,
    change_plan,
    check_quota,
    create_customer,
    deliver_grants,
    enforce_quota,
    ensure_subscription,
    get_subscription,
    history,
    plans_in_use,
    quota_usage,
    resume,
    roll_over,
    set_payment_method,
)

__all__ = [
    "ChargeKind",
    "DeliveryReport",
    "GrantKind",
    "HistoryEvent",
    "InvalidPlanChange",
    "PlanChange",
    "Proration",
    "QuotaExceeded",
    "QuotaStatus",
    "RolloverReport",
    "Subscription",
    "SubscriptionCanceled",
    "SubscriptionCharge",
    "SubscriptionError",
    "SubscriptionGrant",
    "SubscriptionHistory",
    "SubscriptionNotFound",
    "SubscriptionStatus",
    "cancel",
    "change_plan",
    "check_quota",
    "create_customer",
    "deliver_grants",
    "enforce_quota",
    "ensure_subscription",
    "get_subscription",
    "history",
    "next_period",
    "period_bounds",
    "plans_in_use",
    "prorate",
    "quota_usage",
    "resume",
    "roll_over",
    "service",
    "set_payment_method",
]
