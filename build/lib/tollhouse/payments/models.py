"""Payments tables: payments and their refunds, checkouts, the provider's customers and
subscriptions, the provider events already processed, and auto top-up rules.

- `payments`: one row per payment (`pay_...`), unique per provider and `provider_ref` (the
  Checkout Session, PaymentIntent or invoice id; the operator's key for a manual payment), so
  every delivery of one payment finds the same row. Its ledger grants are keyed by its id.
- `payment_refunds`: one row per refund step; `to_micros` is the payment's refunded total
  after the step, so steps are ordered and each reverses its own share once.
- `checkouts`: a provider checkout opened for a customer, with the terms it sells.
- `provider_customers`, `provider_subscriptions`: tollhouse customer <-> provider customer;
  the provider's subscriptions with the time of the last event applied (older ones are
  ignored: events may arrive out of order).
- `processed_provider_events`: each provider event id once, inserted in the transaction
  that records the event's effect.
- `auto_top_ups`: a customer's rule (buy `pack` when the wallet falls below
  `threshold_micros`) and its crossing state (`armed`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime

ORDERED_ID = String(32).with_variant(String(32, collation="C"), "postgresql")
"""A time-ordered id used as a page cursor: compared byte by byte on PostgreSQL too."""


class Provider(StrEnum):
    """Who took the money."""

    STRIPE = "stripe"
    """Stripe: Checkout Sessions, off-session PaymentIntents, invoices (webhooks)."""
    MANUAL = "manual"
    """An operator recorded a payment made some other way (bank transfer, cash)."""


class PaymentKind(StrEnum):
    """What a payment paid for."""

    CREDIT_PACK = "credit_pack"
    """A catalog credit pack: credits plus an optional expiring bonus."""
    CREDITS = "credits"
    """An amount of credits (manual payments): the amount paid, no bonus."""
    SESSION_PACK = "session_pack"
    """A session product's pack: its price as credits, spent at once on the pack."""
    PLAN = "plan"
    """A one-off plan (interval `once`) bought through a checkout."""
    SUBSCRIPTION = "subscription"
    """A provider invoice of a plan subscription (no credits: the plan includes its own)."""
    AUTO_TOP_UP = "auto_top_up"
    """A credit pack bought off-session when the wallet fell below the customer's threshold."""


class PaymentStatus(StrEnum):
    """Where a payment is. `pending` -> `succeeded` or `failed`; a failed invoice payment
    may succeed later (the provider retried it)."""

    PENDING = "pending"
    """Opened; its credits are being posted, or the provider has not answered yet."""
    SUCCEEDED = "succeeded"
    """Paid, and its credits (if any) posted."""
    FAILED = "failed"
    """Declined or abandoned; nothing was posted."""


class CheckoutStatus(StrEnum):
    CREATING = "creating"
    """The row exists; the provider's session is being made (a replay finishes it)."""
    OPEN = "open"
    """The customer may pay at `url`."""
    COMPLETED = "completed"
    """Paid (a pack checkout) or subscribed (a plan checkout)."""
    EXPIRED = "expired"
    """Stripe closed the page unpaid."""


class Payment(Base):
    """A payment received (or attempted) for a customer."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref"),
        Index(None, "customer_id", "id"),
    )

    id: Mapped[str] = mapped_column(ORDERED_ID, primary_key=True)
    """`pay_<22 base62>`, time-ordered: the list's cursor."""
    customer_id: Mapped[str] = mapped_column(String(32), ForeignKey("customers.id"))
    """Who paid."""
    provider: Mapped[str] = mapped_column(String(16))
    """A `Provider` value."""
    provider_ref: Mapped[str] = mapped_column(String(255))
    """The provider's id of what was paid (`cs_...`, `in_...`, an auto top-up's crossing),
    or the operator's idempotency key for a manual payment."""
    kind: Mapped[str] = mapped_column(String(16))
    """A `PaymentKind` value."""
    item: Mapped[str] = mapped_column(String(64), default="")
    """The pack, session product or plan paid for ("" for an amount of credits)."""
    sessions: Mapped[int | None] = mapped_column(Integer)
    """Session packs: how many sessions."""
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    """Money paid, micros of `currency`."""
    currency: Mapped[str] = mapped_column(String(3))
    """Lowercase ISO 4217."""
    credits_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """Credits the payment buys (a paid grant, never expiring); 0 for subscriptions."""
    bonus_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """Bonus credits given with it (a second grant)."""
    bonus_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the bonus expires (`paid_at` + the pack's bonus days); None = never."""
    status: Mapped[str] = mapped_column(String(16))
    """A `PaymentStatus` value."""
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the payment was made (the provider event's time; the recording time for a
    manual payment): the bonus expiry counts from it."""
    checkout_id: Mapped[str | None] = mapped_column(String(32))
    """The checkout it completed, if any."""
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    """Stripe's PaymentIntent (`pi_...`): what `charge.refunded` names."""
    credits_grant_id: Mapped[str | None] = mapped_column(String(32))
    """The ledger lot of the credits, once posted."""
    bonus_grant_id: Mapped[str | None] = mapped_column(String(32))
    """The ledger lot of the bonus, once posted."""
    refunded_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """Money refunded so far (the last refund step's `to_micros`)."""
    description: Mapped[str] = mapped_column(String(500), default="")
    """The operator's note (manual) or what was bought."""
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    """Why it failed (the provider's decline message), or why a session pack was not bought."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the row was written (UTC)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """Last status change (UTC)."""


class PaymentRefund(Base):
    """One refund step of a payment, and the credits it took back."""

    __tablename__ = "payment_refunds"
    __table_args__ = (
        UniqueConstraint("payment_id", "to_micros"),
        UniqueConstraint("payment_id", "idempotency_key"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """`ref_<22 base62>`."""
    payment_id: Mapped[str] = mapped_column(String(32), ForeignKey("payments.id"))
    """The payment refunded."""
    customer_id: Mapped[str] = mapped_column(String(32))
    """Its customer (`cus_...`)."""
    from_micros: Mapped[int] = mapped_column(BigInteger)
    """The payment's refunded total before this step."""
    to_micros: Mapped[int] = mapped_column(BigInteger)
    """The payment's refunded total after this step (> `from_micros`)."""
    credits_requested_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """The credits and bonus this step's share of the payment bought, to take back."""
    credits_reversed_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """What the wallet still held of them and gave back."""
    unrecovered_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """Requested but already spent (or held, or expired): the customer keeps the use."""
    idempotency_key: Mapped[str] = mapped_column(String(255))
    """The operator's key, or the provider's refunded total (`stripe:<to_micros>`)."""
    status: Mapped[str] = mapped_column(String(16))
    """`pending` (credits not yet taken back) or `done`."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the step was recorded (UTC)."""
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When its credits were taken back (UTC); None while pending."""


class Checkout(Base):
    """A provider checkout page opened for a customer, and what it sells."""

    __tablename__ = "checkouts"
    __table_args__ = (UniqueConstraint("customer_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """`chk_<22 base62>`."""
    customer_id: Mapped[str] = mapped_column(String(32), ForeignKey("customers.id"))
    """Who pays (`cus_...`)."""
    provider: Mapped[str] = mapped_column(String(16))
    """A `Provider` value (`stripe`)."""
    kind: Mapped[str] = mapped_column(String(16))
    """`credit_pack`, `session_pack` or `plan` (a `PaymentKind` value)."""
    item: Mapped[str] = mapped_column(String(64))
    """The pack, session product or plan."""
    sessions: Mapped[int | None] = mapped_column(Integer)
    """Session packs: the pack's size."""
    price_micros: Mapped[int] = mapped_column(BigInteger)
    """What the page charges (per period for a subscription), micros of `currency`."""
    credits_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """Credits the payment buys (the pack's; a session pack's price)."""
    bonus_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    """The credit pack's bonus."""
    bonus_expiry_days: Mapped[int | None] = mapped_column(Integer)
    """The bonus expires this many days after the payment (None = never)."""
    currency: Mapped[str] = mapped_column(String(3))
    """Lowercase ISO 4217 (the catalog's)."""
    mode: Mapped[str] = mapped_column(String(16))
    """Stripe's mode: `payment` (once) or `subscription`."""
    status: Mapped[str] = mapped_column(String(16))
    """A `CheckoutStatus` value."""
    provider_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    """Stripe's Checkout Session id (`cs_...`)."""
    url: Mapped[str | None] = mapped_column(Text)
    """Where the customer pays."""
    idempotency_key: Mapped[str] = mapped_column(String(128))
    """The caller's key, unique per customer: a replay answers this checkout."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When it was opened (UTC)."""
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When Stripe closes the page (UTC)."""
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the payment (or subscription) completed it (UTC)."""


class ProviderCustomer(Base):
    """A tollhouse customer's customer object at a provider."""

    __tablename__ = "provider_customers"
    __table_args__ = (UniqueConstraint("provider", "provider_customer_id"),)

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    """A `Provider` value (`stripe`)."""
    customer_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("customers.id"), primary_key=True
    )
    """The tollhouse customer (`cus_...`)."""
    provider_customer_id: Mapped[str] = mapped_column(String(255))
    """Stripe's `cus_...`."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the provider's customer was made (UTC)."""


class ProviderSubscription(Base):
    """A provider's subscription of a customer, as its last applied event left it."""

    __tablename__ = "provider_subscriptions"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    """A `Provider` value (`stripe`)."""
    provider_subscription_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    """Stripe's `sub_...`."""
    customer_id: Mapped[str] = mapped_column(String(32), ForeignKey("customers.id"), index=True)
    """The tollhouse customer it bills."""
    plan: Mapped[str] = mapped_column(String(64))
    """The tollhouse plan it pays for."""
    status: Mapped[str] = mapped_column(String(32))
    """The provider's status (`active`, `past_due`, `unpaid`, `canceled`, ...)."""
    last_event_at: Mapped[int] = mapped_column(BigInteger)
    """Unix seconds of the last event applied (Stripe's `event.created`); older events are
    ignored."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """The time of the last event applied (UTC)."""


class ProcessedProviderEvent(Base):
    """A provider event whose effect is recorded: a second delivery does nothing."""

    __tablename__ = "processed_provider_events"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    """A `Provider` value (`stripe`)."""
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    """Stripe's `evt_...`."""
    type: Mapped[str] = mapped_column(String(64))
    """The event's type (`checkout.session.completed`)."""
    outcome: Mapped[str] = mapped_column(String(200))
    """`processed`, or why it changed nothing (`ignored: ...`, `stale: ...`)."""
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When its effect was recorded (UTC)."""


class AutoTopUp(Base):
    """A customer's auto top-up rule and the state of its current crossing."""

    __tablename__ = "auto_top_ups"

    customer_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("customers.id"), primary_key=True
    )
    """The customer (`cus_...`): one rule each."""
    enabled: Mapped[bool] = mapped_column(Boolean)
    """False: the rule is kept but never fires."""
    threshold_micros: Mapped[int] = mapped_column(BigInteger)
    """Buy when a debit takes the available balance below this."""
    pack: Mapped[str] = mapped_column(String(64))
    """The credit pack bought."""
    armed: Mapped[bool] = mapped_column(Boolean)
    """True until a crossing fires; set again once the balance is back at the threshold."""
    fired_count: Mapped[int] = mapped_column(Integer, default=0)
    """Crossings fired so far: the n-th crossing's payment is keyed by n."""
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the last crossing was claimed (UTC)."""
    last_payment_id: Mapped[str | None] = mapped_column(String(32))
    """The last top-up's payment."""
    last_error: Mapped[str | None] = mapped_column(String(500))
    """Why the last top-up failed (no saved card, declined), None after a success."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the rule was first set (UTC)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """Last change of the rule or its state (UTC)."""
