"""Webhook endpoints and deliveries as the service hands them out, detached from the session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tollhouse.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@dataclass(frozen=True)
class EndpointView:
    """A webhook endpoint, without its secret."""

    id: str
    url: str
    description: str
    event_types: list[str]
    """Exact types, `domain.*` prefixes, or `*`."""
    enabled: bool
    enabled_at: datetime
    """Registered or last enabled: events created from then on are delivered."""
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    """The first failed attempt since the last successful one; None while it succeeds."""
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> EndpointView:
        return cls(
            id=row.id,
            url=row.url,
            description=row.description,
            event_types=list(row.event_types),
            enabled=row.enabled,
            enabled_at=row.enabled_at,
            disabled_reason=row.disabled_reason,
            disabled_at=row.disabled_at,
            failing_since=row.failing_since,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class CreatedEndpoint:
    """A new endpoint and its signing secret, which is shown this once."""

    endpoint: EndpointView
    secret: str
    """`whsec_...`: verify deliveries with it (Standard Webhooks)."""


@dataclass(frozen=True)
class AttemptView:
    """One HTTP attempt of a delivery."""

    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    """None when no answer came (timeout, connection error)."""
    error: str | None
    latency_ms: int
    response_body: str
    """The start of the answer's body."""

    @classmethod
    def of(cls, row: WebhookAttempt) -> AttemptView:
        return cls(
            attempted_at=row.attempted_at,
            succeeded=row.succeeded,
            status_code=row.status_code,
            error=row.error,
            latency_ms=row.latency_ms,
            response_body=row.response_body,
        )


@dataclass(frozen=True)
class DeliveryView:
    """One event to one endpoint, with its attempts oldest first."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    """`pending`, `succeeded` or `failed`."""
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[AttemptView]

    @classmethod
    def of(cls, row: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryView:
        return cls(
            id=row.id,
            endpoint_id=row.endpoint_id,
            event_id=row.event_id,
            event_type=row.event_type,
            status=row.status,
            attempt_count=row.attempt_count,
            next_attempt_at=row.next_attempt_at,
            last_attempt_at=row.last_attempt_at,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=row.created_at,
            completed_at=row.completed_at,
            attempts=[AttemptView.of(attempt) for attempt in attempts],
        )


@dataclass(frozen=True)
class DeliveryPage:
    """Up to `limit` deliveries, newest first, and whether older ones follow."""

    deliveries: list[DeliveryView]
    has_more: bool

    @property
    def next_cursor(self) -> str | None:
        """The id to pass as `before` for the next (older) page; None when empty."""
        return self.deliveries[-1].id if self.deliveries else None
