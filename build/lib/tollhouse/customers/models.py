"""The `customers` table: who is billed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime

DEFAULT_PLAN = "free"
"""`customers.create`'s plan when none is given (integration tests still rely on it); real
onboarding goes through `subscriptions.create_customer`, which passes the subscription's plan."""


class Customer(Base):
    """A person or organisation that owns keys, a wallet and a plan."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Public id, `cus_<22 base62>`."""
    name: Mapped[str] = mapped_column(String(200))
    """Display name, 1..200 characters."""
    email: Mapped[str | None] = mapped_column(String(320))
    """Contact address; not unique (one person may run several customers)."""
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    """The operator's own id for this customer (e.g. their user id); unique when set."""
    plan: Mapped[str] = mapped_column(String(64))
    """Mirror of `subscriptions.plan` (written by the subscriptions service): the catalog
    plan the customer is on, read by the gateway with the customer."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    """When the customer was created (UTC)."""
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    """Free-form JSON object the operator attaches; tollhouse never reads it."""
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    """ISO 3166-1 alpha-2 code, upper case (`DE`); picks the tax rate of its invoices. NULL =
    unknown (no tax line)."""

    def __repr__(self) -> str:
        return f"Customer(id={self.id!r}, plan={self.plan!r})"
