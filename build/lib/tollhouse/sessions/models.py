"""Session tables: billed windows of use, and the prepaid session packs that pay for them.

- `sessions`: one row per session, flat (a fixed fee, ended by a duration or token cap) or,
  later, metered (billed by the second). `active_product` is the product while the session
  is active and NULL once it ended: its unique constraint with `customer_id` keeps one
  active session per customer and product, across processes. `idempotency_key` is unique
  per customer: a start replayed with it answers the same session.
- `session_packs`: one row per pack bought; `sessions_left` counts down as sessions start.
- `session_slices`: one row per ledger hold of a metered session (its slices of paid time,
  in order); `captured_micros` is what will be (or was) captured from the hold, decided in
  the database before the ledger is asked (see `sessions.service.metered`).
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
    CREDIT = "credit"
    """Metered: the wallet could not cover the next slice."""
    HEARTBEAT = "heartbeat"
    """Metered: no heartbeat for the catalog's `heartbeat_timeout`."""
    LAPSED = "lapsed"
    """Metered: its paid time ran out before any process extended it (no tollhouse process
    ran); ended at `paid_until`."""


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
        Index("ix_sessions_kind_status", "kind", "status"),
        Index("ix_sessions_hold_id", "hold_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Public id, `ses_<22 base62>`."""
    customer_id: Mapped[str] = mapped_column(String(32), ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    """A `SessionKind` value."""
    product: Mapped[str] = mapped_column(String(64))
    """The catalog's session product (flat) the session was sold as; `compute:<tier>` for a
    metered session."""
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
    """What the session cost: the product's price, or its share of a pack's price; for a
    metered session 0 while active, then `billed_micros`."""
    currency: Mapped[str] = mapped_column(String(3))
    paid_with: Mapped[str] = mapped_column(String(16))
    """A `PaidWith` value."""
    pack_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("session_packs.id"))
    """The pack a session came from (`paid_with` = pack)."""
    hold_id: Mapped[str | None] = mapped_column(String(32))
    """The ledger hold captured at the fee (`paid_with` = wallet); a metered session's first
    slice hold (NULL when its rate is 0)."""
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(16))
    """An `EndReason` value once ended."""
    idempotency_key: Mapped[str] = mapped_column(String(200))
    """The start's key, unique per customer."""
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """When a cap ends it, the next call it would have covered starts a new session of the
    product (paid like any start) with `auto_renew` set again."""
    resource_tier: Mapped[str | None] = mapped_column(String(16))
    """Metered: the resource tier it runs on."""
    rate_micros_per_hour: Mapped[int | None] = mapped_column(BigInteger)
    """Metered: the plan's rate for the tier when it started (frozen), micros per hour."""
    paid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Metered: how far its slice holds cover (the end of the last slice)."""
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Metered: the last heartbeat (`started_at` until the first)."""
    billed_micros: Mapped[int | None] = mapped_column(BigInteger)
    """Metered: the final cost once ended (`sessions.billing`); NULL while active."""
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Metered: when its slice holds were all captured or voided; NULL before (an ended,
    unsettled session is settled by the reaper)."""
    low_credit_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Metered: when `session.low_credit` was emitted; cleared when the wallet covers the
    threshold again (one event per downward crossing)."""


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


class SessionSlice(Base):
    """One hold of a metered session: the paid time `[starts_at, ends_at)` at its rate.

    Slice 1 is the start's minimum run; each later slice begins where the previous ended.
    `amount_micros` = cost(`ends_at` - started_at) - cost(`starts_at` - started_at), so the
    slices' amounts add up to the cost of the whole paid time (`sessions.billing`).
    """

    __tablename__ = "session_slices"

    session_id: Mapped[str] = mapped_column(String(32), ForeignKey("sessions.id"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1, 2, ... in time order."""
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    """Micros held (0 when the rate is 0: then there is no hold)."""
    hold_id: Mapped[str | None] = mapped_column(String(32))
    """The ledger hold; NULL when `amount_micros` is 0."""
    captured_micros: Mapped[int | None] = mapped_column(BigInteger)
    """What is captured from the hold (0 = voided): set to `amount_micros` once the slice is
    used up, or to its share of the final cost when the session ends; NULL before."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
