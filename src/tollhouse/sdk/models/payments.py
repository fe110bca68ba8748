"""Models of `client.payments`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class PaymentRefund(Model):
    """Answered by `GET /v1/payments`."""

    id: str
    amount_micros: int
    """Money refunded by this step."""
    refunded_total_micros: int
    credits_requested_micros: int
    """The credits and bonus this step's share of the payment bought."""
    credits_reversed_micros: int
    """What the wallet still held of them and gave back."""
    unrecovered_micros: int
    """Already spent, held or expired: not taken back (the wallet never goes below 0)."""
    status: str
    """`done`, or `pending` while its credits are being taken back."""
    created_at: datetime


class Payment(Model):
    """Answered by `GET /v1/payments`."""

    id: str
    customer_id: str
    provider: str
    """`stripe` or `manual`."""
    provider_ref: str
    kind: str
    """`credit_pack`, `credits`, `session_pack`, `plan`, `subscription` or `auto_top_up`."""
    item: str
    sessions: int | None
    amount_micros: int
    """Money paid, in micros of `currency`."""
    currency: str
    credits_micros: int
    """Credits it bought (a grant that never expires)."""
    bonus_micros: int
    bonus_expires_at: datetime | None
    status: str
    """`pending`, `succeeded` or `failed`."""
    paid_at: datetime
    checkout_id: str | None
    credits_grant_id: str | None
    bonus_grant_id: str | None
    refunded_micros: int
    description: str
    failure_reason: str | None
    created_at: datetime
    refunds: list[PaymentRefund]
