"""The `api_keys` table. Holds a key's HMAC digest and visible prefix, never the key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime


class ApiKey(Base):
    """An API key of a customer, or an operator key (`customer_id` None)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Public id, `key_<22 base62>`; what revocation and logs name."""
    customer_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("customers.id"), index=True
    )
    """Owning customer; None for an operator key."""
    name: Mapped[str] = mapped_column(String(200))
    """Human label ("CI", "prod server")."""
    prefix: Mapped[str] = mapped_column(String(40), index=True)
    """Visible part: `th_<env>_` + the first 8 random characters. Not secret, not unique."""
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    """HMAC-SHA256(secret, key), 64 hex characters: the lookup column."""
    scopes: Mapped[list[str]] = mapped_column(JSON)
    """Sorted subset of `read`, `write`, `admin`; `admin` implies the others."""
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)
    """Sorted model ids the key may call; None = every model the plan allows."""
    rate_limit_rpm: Mapped[int | None] = mapped_column(Integer)
    """Per-key requests per minute on top of the plan's limits; None = only the plan's."""
    max_in_flight: Mapped[int | None] = mapped_column(Integer)
    """Most gateway requests the key may have under way at once, below its customer's plan's
    cap; None = only the plan's cap."""
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """From this moment the key no longer authenticates; None = never expires."""
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the key was revoked; a revoked key never authenticates again."""
    successor_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("api_keys.id"))
    """The key issued by rotating this one (`rotate_key`); None = never rotated."""
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Latest successful authentication, written in batches (may lag a few seconds)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the key was issued."""

    def is_active(self, now: datetime) -> bool:
        """True when neither revoked nor expired at `now`."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def __repr__(self) -> str:
        # Never the digest: it is a password-equivalent lookup value.
        return f"ApiKey(id={self.id!r}, prefix={self.prefix!r}, customer_id={self.customer_id!r})"
