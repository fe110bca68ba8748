"""Models of `client.subscriptions`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tollhouse.sdk.models._model import Model


class Subscription(Model):
    """Answered by `GET /v1/subscription/me`."""

    id: str
    customer_id: str
    plan: str
    status: str
    """trialing, active, past_due, canceled or expired."""
    timezone: str
    billing_anchor_day: int
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    cancel_at_period_end: bool
    scheduled_plan: str | None
    """The plan that starts at the period end (a scheduled downgrade)."""
    canceled_at: datetime | None
    has_payment_method: bool


class MeterQuota(Model):
    """Answered by `GET /v1/subscription/usage`."""

    meter: str
    used: int
    limit: int | None
    remaining: int | None
    resets_at: datetime
    unit: str


class SubscriptionChange(Model):
    """Answered by `GET /v1/subscription/history`."""

    id: int
    at: datetime
    event: str
    from_plan: str | None
    to_plan: str | None
    details: dict[str, Any]


class PlanChange(Model):
    """Answered by `POST /v1/subscription/change`."""

    subscription: Subscription
    kind: str
    """upgraded (now), downgrade_scheduled (at the period end) or resubscribed."""
    from_plan: str
    to_plan: str
    effective_at: datetime
    proration_credit_micros: int
    proration_charge_micros: int
    credits_granted_micros: int
