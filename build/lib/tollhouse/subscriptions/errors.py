"""Subscription errors.

```
TollhouseError
└── SubscriptionError (500 subscription-error)
    ├── SubscriptionNotFound (404 subscription-not-found)   also a NotFound; customer_id
    ├── InvalidPlanChange (409 invalid-plan-change)         also a Conflict; plan, new_plan
    ├── SubscriptionCanceled (409 subscription-canceled)    also a Conflict; subscription_status
    └── QuotaExceeded (429 quota-exceeded)                  meter, limit, used, requested,
                                                            resets_at, retry_after_seconds
```
An unknown plan name is the catalog's `PlanNotFound` (404).
"""

from __future__ import annotations

from typing import Any

from tollhouse.errors import Conflict, NotFound, TollhouseError


class SubscriptionError(TollhouseError):
    """Base of the subscriptions domain's errors."""

    status, code, title = 500, "subscription-error", "Subscription error"


class SubscriptionNotFound(NotFound, SubscriptionError):
    """The customer has no subscription. Extra: `customer_id`."""

    status, code, title = 404, "subscription-not-found", "Subscription not found"


class InvalidPlanChange(Conflict, SubscriptionError):
    """The plan change is not possible from the current state: same plan, a one-off (lifetime)
    plan cannot be downgraded, a cancellation is scheduled. Extra: `plan`, `new_plan`."""

    status, code, title = 409, "invalid-plan-change", "Invalid plan change"


class SubscriptionCanceled(Conflict, SubscriptionError):
    """The subscription is canceled or expired: it cannot be resumed or canceled again.
    Subscribe to a plan with `change_plan` instead. Extra: `subscription_status`."""

    status, code, title = 409, "subscription-canceled", "Subscription canceled"


class QuotaExceeded(SubscriptionError):
    """The request would take a meter past the plan's cap for the billing period.

    Extra: `meter`, `limit`, `used`, `requested` (meter units), `resets_at` (ISO 8601, the
    period end) and `retry_after_seconds` (whole seconds until then, at least 1).
    """

    status, code, title = 429, "quota-exceeded", "Quota exceeded"

    def __init__(
        self,
        detail: str,
        *,
        meter: str,
        limit: int,
        used: int,
        resets_at: str,
        retry_after_seconds: int,
        **extra: Any,
    ) -> None:
        super().__init__(
            detail,
            meter=meter,
            limit=limit,
            used=used,
            resets_at=resets_at,
            retry_after_seconds=retry_after_seconds,
            **extra,
        )

    @property
    def retry_after_seconds(self) -> int:
        """Seconds until the quota resets (for the `Retry-After` header)."""
        value: int = self.extra["retry_after_seconds"]
        return value
