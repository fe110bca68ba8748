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
    """When it was sent: its `webhook-timestamp`."""
    succeeded: bool
    """A 2xx answer."""
    status_code: int | None
    """The HTTP status answered; null without an answer (timeout, connection error)."""
    error: str | None
    """Why it failed: `HTTP 500`, `timeout after 15 s`, `ClientConnectorError: ...`."""
    latency_ms: int
    """Milliseconds from sending to the answer (or the failure)."""
    response_body: str
    """The first 1000 bytes of the answer's body."""


class WebhookDelivery(Model):
    """Answered by `GET /v1/webhook-deliveries`."""

    id: str
    """`whd_...`."""
    endpoint_id: str
    event_id: str
    """Also the `webhook-id` header of every attempt."""
    event_type: str
    status: str
    """`pending` (due at `next_attempt_at`), `succeeded` or `failed` (every scheduled attempt
    failed).
    """
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[DeliveryAttempt]
    """Every attempt, oldest first."""


class WebhookDeliveryList(Model):
    """Answered by `GET /v1/webhook-deliveries`."""

    data: list[WebhookDelivery]
    """Deliveries, newest first."""
    has_more: bool
    """Older deliveries follow the last of `data`."""
    next_cursor: str | None
    """The last delivery's id: pass it as `before` for the next (older) page."""
