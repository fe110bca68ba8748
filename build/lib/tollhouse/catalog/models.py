"""The `served_catalogs` table: each catalog `tollhouse serve` started with.

The row with the highest `id` is the catalog in force. `serve` adds a row when it starts with
a catalog whose digest or source differs from that row's (a restart with the same file adds
none); rows are never updated or deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime


class ServedCatalog(Base):
    """One catalog `serve` recorded as the one in force."""

    __tablename__ = "served_catalogs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Increasing with each record: the highest is the catalog in force."""
    digest: Mapped[str] = mapped_column(String(64))
    """SHA-256 (hex) of the catalog's YAML bytes (`Catalog.digest`)."""
    source: Mapped[str] = mapped_column(Text)
    """Where it came from: the file's absolute path, or `built-in`."""
    version: Mapped[str] = mapped_column(Text)
    """The catalog's `version`."""
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    """What other processes check their writes against (`catalog.service.terms`):
    `{"currency", "default_plan", "plans": {name: {rank, price_micros, interval, trial_days,
    included_credits_micros, rollover_cap_micros, has_rollover}}, "models": [ids]}`."""
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When `serve` recorded it (UTC)."""

    def describe(self) -> dict[str, str]:
        """`{source, version, digest}`, as `Catalog.describe`."""
        return {"source": self.source, "version": self.version, "digest": self.digest}
