"""Models of `client.webhook_endpoints`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class WebhookEndpoint(Model):
    """Answered by `GET /v1/webhook-endpoints`."""

    id: str
    """`whe_...`."""
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    enabled_at: datetime
    """Registered or last enabled: the events created from then on are delivered."""
    disabled_reason: str | None
    """Why it is disabled: `disabled by the operator`, or `every attempt failed for 5 days`."""
    disabled_at: datetime | None
    failing_since: datetime | None
    """Its first failed attempt since its last successful one; null while it succeeds."""
    created_at: datetime
    updated_at: datetime


class CreatedWebhookEndpoint(Model):
    """Answered by `POST /v1/webhook-endpoints`."""

    id: str
    """`whe_...`."""
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    enabled_at: datetime
    """Registered or last enabled: the events created from then on are delivered."""
    disabled_reason: str | None
    """Why it is disabled: `disabled by the operator`, or `every attempt failed for 5 days`."""
    disabled_at: datetime | None
    failing_since: datetime | None
    """Its first failed attempt since its last successful one; null while it succeeds."""
    created_at: datetime
    updated_at: datetime
    secret: str
    """`whsec_...`, the Standard Webhooks signing secret. Shown only in this response: store it
    now.
    """
