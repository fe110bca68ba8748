"""The `usage_events` table: one immutable row per accepted usage event; the `denials`
table: one row per refused call (written by `denials.DenialLog`).

Rows are only ever inserted (by `UsageRecorder`), never updated or deleted by tollhouse; every
aggregate (`service.query_usage`, `service.totals`) is computed from them on read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime


class UsageEvent(Base):
    """One usage fact: `value` units of `meter` used by `customer_id` at `occurred_at`.

    `(customer_id, event_id)` is unique: the same caller-supplied id recorded twice counts once
    (the first write wins, even if a later event with that id carries another value).
    """

    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("customer_id", "event_id"),
        CheckConstraint("value >= 0", name="value_non_negative"),
        # Named by the convention after their first column:
        # ix_usage_events_customer_id = (customer_id, meter, occurred_at), for usage queries;
        # ix_usage_events_key_id = (key_id, occurred_at), for per-key usage.
        Index(None, "customer_id", "meter", "occurred_at"),
        Index(None, "key_id", "occurred_at"),
        # ix_usage_events_session_id = (session_id, customer_id), for a session's tokens.
        Index(None, "session_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    """Surrogate key in insertion order. INTEGER on SQLite, where only that autoincrements."""

    event_id: Mapped[str] = mapped_column(String(128))
    """The caller's idempotency id: 1..128 chars of `[A-Za-z0-9_.:-]`, unique per customer."""

    customer_id: Mapped[str] = mapped_column(String(32))
    """The customer billed for this usage (`cus_...`); no foreign key (events outlive rows)."""

    meter: Mapped[str] = mapped_column(String(64))
    """The meter's name from the catalog, e.g. `input_tokens`, `images`, `api_calls`."""

    value: Mapped[int] = mapped_column(BigInteger)
    """Quantity in the meter's unit (tokens, images, seconds, bytes, calls); 0 <= value <= 2**62."""

    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the usage happened (caller supplied, UTC); the time windows are cut on it."""

    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When tollhouse wrote the row (the recorder's clock at the batch's transaction, UTC)."""

    key_id: Mapped[str | None] = mapped_column(String(32))
    """The API key that made the call (`key_...`), or None for sidecar-reported usage."""

    model: Mapped[str | None] = mapped_column(String(128))
    """The catalog model id the usage belongs to, if any."""

    session_id: Mapped[str | None] = mapped_column(String(32))
    """The billed session the usage happened in (`ses_...`), if any: a session's tokens are
    the sum of its customer's `input_tokens` and `output_tokens` events carrying its id."""

    upstream: Mapped[str | None] = mapped_column(String(64))
    """The catalog upstream that served the call (`openai`), for gateway calls: with fallback
    upstreams, the one that answered; None for sidecar-reported usage."""

    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """At most 16 scalar caller properties (str keys; str, int, float, bool or null values)."""


class Denial(Base):
    """One refused call: who (`customer_id`, `key_id`, the `plan` it was on), why (`reason`,
    the problem type's code, e.g. `rate-limited`, `quota-exceeded`, `insufficient-credit`),
    of what (`model`, `route`) and when (`occurred_at`, UTC)."""

    __tablename__ = "denials"
    __table_args__ = (
        # ix_denials_customer_id = (customer_id, occurred_at): a customer's recent denials;
        # ix_denials_occurred_at: every customer's over a range.
        Index(None, "customer_id", "occurred_at"),
        Index(None, "occurred_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    customer_id: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str | None] = mapped_column(String(32))
    plan: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    route: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
