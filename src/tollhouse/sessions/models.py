"""Session tables: billed windows of use, and the prepaid session packs that pay for them.

- `sessions`: one row per session, flat (a fixed fee, ended by a duration or token cap) or,
  later, metered (billed by the second). `active_product` is the product while the session
  is active and NULL once it ended: its unique constraint with `customer_id` keeps one
  active session per customer and product, across processes. `idempotency_key` is unique
  per customer: a start replayed with it answers the same session.
- `session_packs`: one row per pack bought; `sessions_left` counts down as sessions start.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from tollhouse.storage.base import Base, UTCDateTime


class SessionKind(StrEnum):
    """How a session is billed."""

    FLAT = "flat"
    """A fixed fee paid at the start; ends at its duration or token cap."""
    METERED = "metered"
    """Billed by the second on a resource tier (compute sessions)."""


class SessionStatus(StrEnum):
    """Where a session is in its life."""

    ACTIVE = "active"
    ENDED = "ended"


class EndReason(StrEnum):
    """Why a session ended."""

    DURATION = "duration"
    """Its duration cap passed."""
    TOKENS = "tokens"
    """Its token cap was reached."""
    TERMINATED = "terminated"
    """The customer or an operator ended it."""


class PaidWith(StrEnum):
    """What paid a session's fee."""

    PACK = "pack"
    """One session of a prepaid pack."""
    WALLET = "wallet"
    """The wallet, through a ledger hold captured at the fee."""


class Session(Base):
    """A billed window of use. Money in micros of `currency`."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key"),
        UniqueConstraint("customer_id", "active_product"),
        Index("ix_sessions_customer_id_started_at", "customer_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Public id, `ses_<22 base62>`."""
    customer_id: Mapped[str] = mapped_column(String(32), ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    """A `SessionKind` value."""
    product: Mapped[str] = mapped_column(String(64))
    """The catalog's session product (flat) the session was sold as."""
    status: Mapped[str] = mapped_column(String(16))
    """A `SessionStatus` value."""
    active_product: Mapped[str | None] = mapped_column(String(64))
    """`product` while active, NULL once ended (one active session per customer and product)."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the duration cap ends it (flat); NULL when it has none."""
    token_cap: Mapped[int | None] = mapped_column(BigInteger)
    """Tokens (input + output) it may use; NULL = no token cap."""
    tokens_used: Mapped[int] = mapped_column(BigInteger, default=0)
    """Tokens counted when it ended; while active, reads sum its usage events instead (the
    exact count: `input_tokens` + `output_tokens` events carrying its id)."""
    fee_micros: Mapped[int] = mapped_column(BigInteger)
    """What the session cost: the product's price, or its share of a pack's price."""
    currency: Mapped[str] = mapped_column(String(3))
    paid_with: Mapped[str] = mapped_column(String(16))
    """A `PaidWith` value."""
    pack_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("session_packs.id"))
    """The pack a session came from (`paid_with` = pack)."""
    hold_id: Mapped[str | None] = mapped_column(String(32))
    """The ledger hold captured at the fee (`paid_with` = wallet)."""
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(16))
    """An `EndReason` value once ended."""
    idempotency_key: Mapped[str] = mapped_column(String(200))
    """The start's key, unique per customer."""
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """When a cap ends it, the next call it would have covered starts a new session of the
    product (paid like any start) with `auto_renew` set again."""


class SessionPack(Base):
    """Prepaid sessions of one product, bought from the wallet."""

    __tablename__ = "session_packs"
    __table_args__ = (
        UniqueConstraint("customer_id", "idempotency_key"),
        Index("ix_session_packs_customer_id_product", "customer_id", "product"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Public id, `spk_<22 base62>`."""
    customer_id: Mapped[str] = mapped_column(String(32), ForeignKey("customers.id"))
    product: Mapped[str] = mapped_column(String(64))
    sessions: Mapped[int] = mapped_column(Integer)
    """Sessions bought."""
    sessions_left: Mapped[int] = mapped_column(Integer)
    """Sessions not yet started (0..sessions)."""
    price_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    hold_id: Mapped[str] = mapped_column(String(32))
    """The ledger hold captured at the price."""
    idempotency_key: Mapped[str] = mapped_column(String(200))
    """The purchase's key, unique per customer."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
