"""The `events` table: the outbox. One row per fact, inserted in the transaction of the
change it describes and never updated or deleted by tollhouse."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime

EVENT_ID = String(32).with_variant(String(32, collation="C"), "postgresql")
"""An event id's type: compared byte by byte on PostgreSQL too (its default collation may
order `a` before `B`; base62 ids are time-ordered in ASCII order), as SQLite always does."""


class Event(Base):
    """One lifecycle fact (`session.ended`, `credits.low`, ...) of a customer, or of the
    whole installation when `customer_id` is null."""

    __tablename__ = "events"
    __table_args__ = (
        # ix_events_customer_id = (customer_id, id): one customer's events in cursor order.
        Index(None, "customer_id", "id"),
    )

    id: Mapped[str] = mapped_column(EVENT_ID, primary_key=True)
    """`evt_<22 base62>`, time-ordered and increasing within a process: the read cursor."""
    customer_id: Mapped[str | None] = mapped_column(String(32))
    """The customer the fact is about (`cus_...`); null for an operator-wide event. No
    foreign key: events outlive what they describe."""
    type: Mapped[str] = mapped_column(String(64))
    """Dotted lowercase `domain.verb` (`session.started`), as webhook endpoints subscribe."""
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The payload, a JSON object: ids as strings, money as integer micros."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the change happened (the caller's clock, UTC)."""

    def __repr__(self) -> str:
        return f"Event(id={self.id!r}, type={self.type!r})"
