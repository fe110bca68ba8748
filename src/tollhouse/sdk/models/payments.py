"""Models of `client.payments`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class PaymentRefund(Model):
    """Answered by `GET /v1/payments`."""

    id: str
    amount_micros: int
    refunded_total_micros: int
    credits_requested_micros: int
    credits_reversed_micros: int
    unrecovered_micros: int
    status: str
    created_at: datetime


class Payment(Model):
    """Answered by `GET /v1/payments`."""

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
    credits_grant_id: str | None
    bonus_grant_id: str | None
    refunded_micros: int
    description: str
    failure_reason: str | None
    created_at: datetime
    refunds: list[PaymentRefund]
