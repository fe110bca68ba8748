"""The `credit_alerts` table: one row per customer with a low-credit threshold.

`state` is where the customer's available balance was last seen relative to the threshold:
`armed` (above it), `low` (below it), `depleted` (at zero). Each downward crossing changes it
once, by a conditional update (`WHERE state = <what the process saw>`) in the transaction that
emits the crossing's events, so two processes seeing the same crossing write one event.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime


class AlertState(StrEnum):
    """Where the available balance was last seen."""

    ARMED = "armed"
    LOW = "low"
    DEPLETED = "depleted"


class CreditAlert(Base):
    """A customer's low-credit threshold: `threshold_micros`, or `threshold_percent` of its
    latest grant (exactly one is set)."""

    __tablename__ = "credit_alerts"

    customer_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("customers.id"), primary_key=True
    )
    threshold_micros: Mapped[int | None] = mapped_column(BigInteger)
    """Warn below this available balance, in micros."""
    threshold_percent: Mapped[int | None] = mapped_column(Integer)
    """Warn below this share (1..100) of the customer's latest grant."""
    state: Mapped[str] = mapped_column(String(16))
    """An `AlertState` value."""
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the threshold was set or the state last changed."""
