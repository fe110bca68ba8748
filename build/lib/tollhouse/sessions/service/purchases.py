"""What a customer bought from its wallet in a time window: flat sessions' fees and session
packs (for invoices). Reads only; sessions paid from a pack are not purchases (the pack was)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.sessions.models import PaidWith, Session, SessionKind, SessionPack


@dataclass(frozen=True, slots=True)
class Purchase:
    """One wallet purchase. Money in micros of `currency`."""

    kind: Literal["session_fee", "session_pack"]
    id: str
    """The session (`ses_...`) or the pack (`spk_...`)."""
    product: str
    sessions: int
    """1 for a session; the pack's size for a pack."""
    amount_micros: int
    """The fee or the pack's price, as captured from the wallet."""
    currency: str
    at: datetime
    """When the session started or the pack was bought (UTC)."""
    hold_id: str | None
    """The ledger hold captured for it."""


async def wallet_purchases(
    session: AsyncSession, customer_id: str, *, start: datetime, end: datetime
) -> list[Purchase]:
    """The customer's flat sessions paid from the wallet that started, and the packs bought,
    within `[start, end)` (UTC), oldest first."""
    started = await session.scalars(
        select(Session)
        .where(
            Session.customer_id == customer_id,
            Session.kind == SessionKind.FLAT.value,
            Session.paid_with == PaidWith.WALLET.value,
            Session.started_at >= start,
            Session.started_at < end,
        )
        .order_by(Session.started_at, Session.id)
    )
    bought = await session.scalars(
        select(SessionPack)
        .where(
            SessionPack.customer_id == customer_id,
            SessionPack.created_at >= start,
            SessionPack.created_at < end,
        )
        .order_by(SessionPack.created_at, SessionPack.id)
    )
    purchases = [
        Purchase(
            kind="session_fee",
            id=row.id,
            product=row.product,
            sessions=1,
            amount_micros=row.fee_micros,
            currency=row.currency,
            at=row.started_at,
            hold_id=row.hold_id,
        )
        for row in started
    ]
    purchases += [
        Purchase(
            kind="session_pack",
            id=pack.id,
            product=pack.product,
            sessions=pack.sessions,
            amount_micros=pack.price_micros,
            currency=pack.currency,
            at=pack.created_at,
            hold_id=pack.hold_id,
        )
        for pack in bought
    ]
    return sorted(purchases, key=lambda p: (p.at, p.id))
