"""Models of `client.webhook_endpoints`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class WebhookEndpoint(Model):
    """Answered by `GET /v1/webhook-endpoints`."""

    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    enabled_at: datetime
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class CreatedWebhookEndpoint(Model):
    """Answered by `POST /v1/webhook-endpoints`."""

    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    enabled_at: datetime
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str
