"""Models of `client.webhook_deliveries`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from tollhouse.sdk.models._model import Model


class DeliveryStatus(TypedDict):
    """Where a delivery is."""


class DeliveryAttempt(Model):
    """Answered by `GET /v1/webhook-deliveries`."""

    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    error: str | None
    latency_ms: int
    response_body: str


class WebhookDelivery(Model):
    """Answered by `GET /v1/webhook-deliveries`."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[DeliveryAttempt]


class WebhookDeliveryList(Model):
    """Answered by `GET /v1/webhook-deliveries`."""

    data: list[WebhookDelivery]
    has_more: bool
    next_cursor: str | None
