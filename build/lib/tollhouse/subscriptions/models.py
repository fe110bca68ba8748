"""Subscription tables: one subscription per customer, its history, its pending charges and
the credit grants it owes (an outbox the ledger is fed from).

- `subscriptions`: the customer's plan over billing periods; updated in place under an
  optimistic `version` (every write is `UPDATE ... WHERE version = :seen`).
- `subscription_history`: append-only log of every state change.
- `subscription_charges`: pending invoice items (fees and prorations) for the billing domain;
  append-only, idempotent by `idempotency_key`.
- `subscription_grants`: included credits owed to the customer, written in the same
  transaction as the state change that owes them and handed to the ledger afterwards
  (`delivered_at` set once the ledger confirmed, or the row was skipped).
- `quota_notices`: each (customer, meter, period) whose cap was reached, written once with
  its `quota.reached` event.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime


class SubscriptionStatus(StrEnum):
    """Where a subscription is in its life."""

    TRIALING = "trialing"
    """On a paid plan's free trial, until `trial_end`."""
    ACTIVE = "active"
    """Paid up (or on a free plan)."""
    PAST_DUE = "past_due"
    """A paid period started without a payment method: the plan stays for this period, no
    included credits are granted; without a payment method by its end it expires."""
    CANCELED = "canceled"
    """The customer canceled: the plan fell back to the default plan, periods keep rolling."""
    EXPIRED = "expired"
    """A past-due period ended unpaid: the plan fell back to the default plan."""


class HistoryEvent(StrEnum):
    """What a `subscription_history` row records."""

    CREATED = "created"
    TRIAL_STARTED = "trial_started"
    TRIAL_ENDED = "trial_ended"
    ACTIVATED = "activated"
    PAST_DUE = "past_due"
    UPGRADED = "upgraded"
    DOWNGRADE_SCHEDULED = "downgrade_scheduled"
    DOWNGRADED = "downgraded"
    CANCEL_SCHEDULED = "cancel_scheduled"
    CANCELED = "canceled"
    RESUMED = "resumed"
    EXPIRED = "expired"
    PERIOD_ROLLED = "period_rolled"
    CREDITS_GRANTED = "credits_granted"
    PAYMENT_METHOD_SET = "payment_method_set"


class ChargeKind(StrEnum):
    """A pending invoice item's kind."""

    SUBSCRIPTION_FEE = "subscription_fee"
    """The plan's price for a period (or once, for a one-off plan)."""
    PRORATION_CREDIT = "proration_credit"
    """Negative: the unused part of the old plan's price on an upgrade."""
    PRORATION_CHARGE = "proration_charge"
    """Positive: the new plan's price for the rest of the period on an upgrade."""


class GrantKind(StrEnum):
    """Why the subscription owes credits."""

    INCLUDED = "included"
    """The plan's included credits for a period."""
    ROLLOVER = "rollover"
    """Unused included credits carried from the previous period (capped)."""
    UPGRADE = "upgrade"
    """The prorated difference of included credits after an upgrade."""


def _autoincrement() -> BigInteger:
    return BigInteger().with_variant(Integer(), "sqlite")


class Subscription(Base):
    """A customer's plan over billing periods. One per customer."""

    __tablename__ = "subscriptions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Public id, `sub_<22 base62>`."""
    customer_id: Mapped[str] = mapped_column(String(32), ForeignKey("customers.id"), unique=True)
    """The customer (`cus_...`); at most one subscription each."""
    plan: Mapped[str] = mapped_column(String(64))
    """The catalog plan in effect now (mirrored to `customers.plan`)."""
    status: Mapped[str] = mapped_column(String(16))
    """A `SubscriptionStatus` value."""
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    """IANA time zone name whose local midnights cut the billing periods."""
    billing_anchor_day: Mapped[int] = mapped_column(Integer)
    """Day of month (1..31) periods start on, clamped to shorter months' last day."""
    current_period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    """Start of the current billing period (inclusive, UTC)."""
    current_period_end: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    """End of the current billing period (exclusive, UTC); `roll_over` acts once it passed."""
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the trial ends (UTC), while or since trialing; None without a trial."""
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    """Cancel at `current_period_end` (undo with `resume`)."""
    scheduled_plan: Mapped[str | None] = mapped_column(String(64))
    """A downgrade applied at `current_period_end` (undo with `resume`)."""
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the cancellation was asked for (now, or scheduled for period end)."""
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the paid plan ended (canceled or expired)."""
    has_payment_method: Mapped[bool] = mapped_column(Boolean, default=False)
    """A payment method is on file (set by the operator now, by Stripe later)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the subscription was created (UTC)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """Last change (UTC)."""
    version: Mapped[int] = mapped_column(Integer, default=0)
    """Optimistic concurrency: +1 on every change, written with `WHERE version = :seen`."""

    # Every ORM UPDATE is `... WHERE id = :id AND version = :seen` and bumps `version`; a lost
    # race raises StaleDataError instead of overwriting.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    def __repr__(self) -> str:
        return f"Subscription(id={self.id!r}, plan={self.plan!r}, status={self.status!r})"


class SubscriptionHistory(Base):
    """One state change of a subscription; rows are only inserted."""

    __tablename__ = "subscription_history"
    __table_args__ = (Index(None, "subscription_id", "id"),)

    id: Mapped[int] = mapped_column(_autoincrement(), primary_key=True, autoincrement=True)
    """Insertion order."""
    subscription_id: Mapped[str] = mapped_column(String(32), ForeignKey("subscriptions.id"))
    """The subscription (`sub_...`)."""
    customer_id: Mapped[str] = mapped_column(String(32))
    """Its customer (`cus_...`), for per-customer reads."""
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When it happened (the effective time: a period boundary for rollover events)."""
    event: Mapped[str] = mapped_column(String(32))
    """A `HistoryEvent` value."""
    from_plan: Mapped[str | None] = mapped_column(String(64))
    """Plan before the change, if it is about plans."""
    to_plan: Mapped[str | None] = mapped_column(String(64))
    """Plan after the change (or scheduled), if it is about plans."""
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Event specifics: period bounds, amounts in micros, grant keys, reasons."""


class SubscriptionCharge(Base):
    """A pending invoice item (fee or proration line) for the billing domain."""

    __tablename__ = "subscription_charges"

    id: Mapped[int] = mapped_column(_autoincrement(), primary_key=True, autoincrement=True)
    """Insertion order."""
    subscription_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("subscriptions.id"), index=True
    )
    """The subscription (`sub_...`)."""
    customer_id: Mapped[str] = mapped_column(String(32), index=True)
    """Who pays (`cus_...`)."""
    kind: Mapped[str] = mapped_column(String(32))
    """A `ChargeKind` value."""
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    """Signed micros of `currency`: positive is owed by the customer, negative a credit."""
    currency: Mapped[str] = mapped_column(String(3))
    """ISO 4217, lowercase (the catalog's currency)."""
    plan: Mapped[str] = mapped_column(String(64))
    """The plan the line is for."""
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    """Start of the time the line covers (UTC; the change time for prorations)."""
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    """End of the time the line covers (UTC, exclusive)."""
    description: Mapped[str] = mapped_column(String(500), default="")
    """Human text for the invoice line."""
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    """One line per fact: `fee:<sub>:<period_start>`, `proration:<sub>:<at>:<plan>:...`."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the line was recorded (UTC)."""


class SubscriptionGrant(Base):
    """Credits the subscription owes the customer; delivered to the ledger after commit."""

    __tablename__ = "subscription_grants"

    id: Mapped[int] = mapped_column(_autoincrement(), primary_key=True, autoincrement=True)
    """Insertion order."""
    subscription_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("subscriptions.id"), index=True
    )
    """The subscription (`sub_...`)."""
    customer_id: Mapped[str] = mapped_column(String(32))
    """Who receives the credits (`cus_...`)."""
    kind: Mapped[str] = mapped_column(String(16))
    """A `GrantKind` value."""
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    """Micros of `currency` to grant (> 0)."""
    currency: Mapped[str] = mapped_column(String(3))
    """ISO 4217, lowercase."""
    plan: Mapped[str] = mapped_column(String(64))
    """The plan the credits come with."""
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    """Start of the period the credits belong to (UTC)."""
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the credits expire (the period end; None for a one-off plan's credits)."""
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    """The ledger grant's key: `included:<sub>:<period_start ISO>`, `rollover:...`, ..."""
    description: Mapped[str] = mapped_column(String(500), default="")
    """Shown on the ledger grant."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the debt was recorded (UTC)."""
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    """When the ledger confirmed the grant or the row was skipped; None = pending."""
    grant_id: Mapped[str | None] = mapped_column(String(32))
    """The ledger grant's id once delivered; None when skipped."""
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
    """`pending`, `granted`, or `skipped` (expired before it could be delivered)."""


class QuotaNotice(Base):
    """A plan's cap reached by a customer in one period: `quota.reached` was emitted once."""

    __tablename__ = "quota_notices"

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Who reached it (`cus_...`)."""
    meter: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The capped meter."""
    period_end: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    """The end of the period it was reached in: when the quota resets (UTC)."""
    limit: Mapped[int] = mapped_column(BigInteger)
    """The cap, in the meter's unit."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When it was noticed (UTC)."""
