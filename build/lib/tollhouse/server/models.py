"""The `cache_invalidations` table: the log every serving process polls (`server.invalidation`).

One row per "drop what you cached about this": a revoked or changed key, a customer whose plan
or billing period changed. Rows are written right after the change commits and pruned after
`invalidation_log.RETENTION_SECONDS`. Ids grow in commit order (SQLite: one writer and
AUTOINCREMENT, so a pruned id is never reused; PostgreSQL: each insert holds the table's
EXCLUSIVE lock until its commit), so "every row after the last id seen" misses none.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime


class CacheInvalidation(Base):
    """One invalidation: `kind` names what `subject` is."""

    __tablename__ = "cache_invalidations"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    """Position in the log, increasing in commit order; pollers read the ids after theirs."""
    kind: Mapped[str] = mapped_column(String(16))
    """`key` (an API key id) or `customer` (a customer id: its keys' plan and quota views)."""
    subject: Mapped[str] = mapped_column(String(64))
    """The key id or the customer id."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    """When it was written (the writer's clock); pruning reads it."""
