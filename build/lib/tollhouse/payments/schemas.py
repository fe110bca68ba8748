"""Read-only views the payments services hand out (frozen; never ORM objects). Money in int
micros of `currency`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from tollhouse.payments.models import AutoTopUp, Checkout, Payment, PaymentRefund


@dataclass(frozen=True, slots=True)
class RefundView:
    """One refund step of a payment."""

    id: str
    payment_id: str
    amount_micros: int
    """Money refunded by this step."""
    refunded_total_micros: int
    """The payment's refunded total after it."""
    credits_requested_micros: int
    """Credits and bonus this step's share bought, to take back."""
    credits_reversed_micros: int
    """What the wallet still held of them and gave back."""
    unrecovered_micros: int
    """Already spent (or held, or expired): the customer keeps that use."""
    status: str
    created_at: datetime

    @classmethod
    def of(cls, row: PaymentRefund) -> RefundView:
        return cls(
            id=row.id,
            payment_id=row.payment_id,
            amount_micros=row.to_micros - row.from_micros,
            refunded_total_micros=row.to_micros,
            credits_requested_micros=row.credits_requested_micros,
            credits_reversed_micros=row.credits_reversed_micros,
            unrecovered_micros=row.unrecovered_micros,
            status=row.status,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class PaymentView:
    """A payment and what it posted."""

    id: str
    customer_id: str
    provider: str
    provider_ref: str
    kind: str
    item: str
    sessions: int | None
    amount_micros: int
    currency: str
    credits_micros: int
    bonus_micros: int
    bonus_expires_at: datetime | None
    status: str
    paid_at: datetime
    checkout_id: str | None
    payment_intent_id: str | None
    credits_grant_id: str | None
    bonus_grant_id: str | None
    refunded_micros: int
    description: str
    failure_reason: str | None
    created_at: datetime
    refunds: tuple[RefundView, ...] = ()
    replayed: bool = False
    """True on the answer to a recording whose key was used before: the first payment."""

    @classmethod
    def of(
        cls, row: Payment, refunds: tuple[RefundView, ...] = (), *, replayed: bool = False
    ) -> PaymentView:
        return cls(
            id=row.id,
            customer_id=row.customer_id,
            provider=row.provider,
            provider_ref=row.provider_ref,
            kind=row.kind,
            item=row.item,
            sessions=row.sessions,
            amount_micros=row.amount_micros,
            currency=row.currency,
            credits_micros=row.credits_micros,
            bonus_micros=row.bonus_micros,
            bonus_expires_at=row.bonus_expires_at,
            status=row.status,
            paid_at=row.paid_at,
            checkout_id=row.checkout_id,
            payment_intent_id=row.payment_intent_id,
            credits_grant_id=row.credits_grant_id,
            bonus_grant_id=row.bonus_grant_id,
            refunded_micros=row.refunded_micros,
            description=row.description,
            failure_reason=row.failure_reason,
            created_at=row.created_at,
            refunds=refunds,
            replayed=replayed,
        )


@dataclass(frozen=True, slots=True)
class CheckoutView:
    """A checkout page and what it sells."""

    id: str
    customer_id: str
    provider: str
    kind: str
    item: str
    sessions: int | None
    price_micros: int
    credits_micros: int
    bonus_micros: int
    currency: str
    mode: str
    status: str
    url: str | None
    provider_session_id: str | None
    created_at: datetime
    expires_at: datetime | None
    completed_at: datetime | None
    replayed: bool = False

    @classmethod
    def of(cls, row: Checkout, *, replayed: bool = False) -> CheckoutView:
        return cls(
            id=row.id,
            customer_id=row.customer_id,
            provider=row.provider,
            kind=row.kind,
            item=row.item,
            sessions=row.sessions,
            price_micros=row.price_micros,
            credits_micros=row.credits_micros,
            bonus_micros=row.bonus_micros,
            currency=row.currency,
            mode=row.mode,
            status=row.status,
            url=row.url,
            provider_session_id=row.provider_session_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            completed_at=row.completed_at,
            replayed=replayed,
        )


@dataclass(frozen=True, slots=True)
class AutoTopUpView:
    """A customer's auto top-up rule and its state."""

    customer_id: str
    enabled: bool
    threshold_micros: int
    pack: str
    armed: bool
    """True: the next debit below the threshold buys the pack."""
    fired_count: int
    last_fired_at: datetime | None
    last_payment_id: str | None
    last_error: str | None

    @classmethod
    def of(cls, row: AutoTopUp) -> AutoTopUpView:
        return cls(
            customer_id=row.customer_id,
            enabled=row.enabled,
            threshold_micros=row.threshold_micros,
            pack=row.pack,
            armed=row.armed,
            fired_count=row.fired_count,
            last_fired_at=row.last_fired_at,
            last_payment_id=row.last_payment_id,
            last_error=row.last_error,
        )


Outcome = Literal["processed", "duplicate", "ignored", "stale"]


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What one webhook delivery did."""

    event_id: str
    type: str
    outcome: Outcome
    """`processed` (its effect is recorded), `duplicate` (an earlier delivery recorded it),
    `ignored` (a type or object tollhouse does not act on), `stale` (older than the last
    event applied to the same subscription)."""
    detail: str = ""
    payment_ids: list[str] = field(default_factory=list)
