"""Webhook tables: the operator's endpoints, one delivery per (endpoint, event), each attempt.

- `webhook_endpoints`: a URL, the event types it takes, its `whsec_` signing secret, and
  whether it is enabled (with the reason when not).
- `webhook_deliveries`: one row per (endpoint, event), unique, created by the dispatcher
  (`webhooks.dispatch`). It holds the delivery's state, attempt count, when it is next due,
  and the lease of the process sending it now.
- `webhook_attempts`: the delivery log, one row per HTTP attempt (status or error, latency,
  the start of the answer). Append-only.
- `webhook_cursors`: where the dispatcher has read the events outbox up to.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.events.models import EVENT_ID
from tollhouse.storage.base import Base, UTCDateTime


class DeliveryStatus(StrEnum):
    """Where a delivery is."""

    PENDING = "pending"
    """Not yet accepted: due at `next_attempt_at`."""
    SUCCEEDED = "succeeded"
    """An attempt got a 2xx answer."""
    FAILED = "failed"
    """Every scheduled attempt failed (a manual retry may still send it)."""


class WebhookEndpoint(Base):
    """An operator's URL subscribed to event types."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Public id, `whe_<22 base62>`; its first symbols are its creation time (`tollhouse.ids`),
    which bounds where the dispatcher starts reading events for it."""
    url: Mapped[str] = mapped_column(String(2048))
    """Absolute `http` or `https` URL the deliveries are POSTed to."""
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list[str]] = mapped_column(JSON)
    """What it takes: exact types (`session.ended`), prefixes (`session.*`), or `*` (all)."""
    secret: Mapped[str] = mapped_column(String(100))
    """`whsec_<base64 of 32 random bytes>`: the Standard Webhooks signing key. Kept as is
    (signing needs it); shown to the operator once, at creation."""
    enabled: Mapped[bool] = mapped_column(Boolean)
    """False: no deliveries are made for the events created meanwhile, and pending ones
    wait."""
    enabled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When it was registered or last enabled: only events created at or after it (their
    `created_at`) are delivered to it."""
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    """Why it was disabled (by the operator, or after failing for `DISABLE_AFTER_SECONDS`)."""
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The first failed attempt since its last successful one; null while it succeeds."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One event to one endpoint: sent until an attempt succeeds or the schedule runs out."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        # ix_webhook_deliveries_due = (status, next_attempt_at): the worker's due scan.
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Public id, `whd_<22 base62>`, time-ordered: the log lists newest first by it."""
    endpoint_id: Mapped[str] = mapped_column(String(32), ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[str] = mapped_column(EVENT_ID, ForeignKey("events.id"))
    """The event sent; also the `webhook-id` header, the same on every attempt."""
    event_type: Mapped[str] = mapped_column(String(64))
    """The event's type (copied, for listing)."""
    status: Mapped[str] = mapped_column(String(16))
    """A `DeliveryStatus` value."""
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    """Attempts made so far (manual retries included)."""
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it is due (pending); null once it succeeded or failed."""
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """A process is sending it until then; after it (a crash), another may."""
    lease_token: Mapped[str | None] = mapped_column(String(32))
    """Names the claim of the process holding the lease: only it records the outcome."""
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    """The last attempt's HTTP status; null if it got none (timeout, connection error)."""
    last_error: Mapped[str | None] = mapped_column(String(500))
    """The last attempt's failure, if any: `HTTP 500`, `timeout after 15 s`, ..."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it succeeded or failed for good."""


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery. Never updated."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery_id", "delivery_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    """Surrogate key in insertion order. INTEGER on SQLite, where only that autoincrements."""
    delivery_id: Mapped[str] = mapped_column(String(32), ForeignKey("webhook_deliveries.id"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the request was sent (the signed `webhook-timestamp`)."""
    succeeded: Mapped[bool] = mapped_column(Boolean)
    """True for a 2xx answer."""
    status_code: Mapped[int | None] = mapped_column(Integer)
    """The HTTP status answered; null when none was (timeout, connection error)."""
    error: Mapped[str | None] = mapped_column(String(500))
    """Why it failed; null when it succeeded."""
    latency_ms: Mapped[int] = mapped_column(Integer)
    """Milliseconds from sending the request to the answer's status and the start of its
    body (or to the failure)."""
    response_body: Mapped[str] = mapped_column(String(1000), default="")
    """The start of the answer's body (at most `RESPONSE_SNIPPET_BYTES`, decoded leniently)."""


class WebhookCursor(Base):
    """How far the dispatcher has read the events outbox (one row, `name` = `outbox`)."""

    __tablename__ = "webhook_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(EVENT_ID)
    """The highest event id read; the next pass reads on from a minute before it."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
