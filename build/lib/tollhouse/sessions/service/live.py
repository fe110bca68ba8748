"""What the gateway's session guard loads for one customer: its active flat sessions with the
tokens their usage events count, and its latest ended session of each product.

Runs in the caller's transaction and never commits; sessions that reached a cap are ended
first (`end_finished`), so what comes back as active has time and tokens left by the stored
count.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.sessions.models import Session, SessionKind, SessionStatus
from tollhouse.sessions.schemas import SessionView
from tollhouse.sessions.service.lifecycle import end_finished, views

RECENT_ENDED = 50
"""How many of the customer's latest ended sessions are read to find each product's last."""


@dataclass(frozen=True, slots=True)
class FlatSessions:
    """A customer's flat sessions as of a moment: product -> its active session, and
    product -> its latest ended session (for products without an active one)."""

    active: dict[str, SessionView]
    ended: dict[str, SessionView]


async def flat_sessions(session: AsyncSession, customer_id: str, *, clock: Clock) -> FlatSessions:
    """The customer's active flat sessions and the latest ended one per product (among its
    `RECENT_ENDED` latest). Ends those that reached a cap first, with their events."""
    await end_finished(session, customer_id, clock=clock)
    now = clock.now()
    flat = (Session.customer_id == customer_id) & (Session.kind == SessionKind.FLAT)
    active_rows = list(
        await session.scalars(select(Session).where(flat, Session.active_product.is_not(None)))
    )
    ended_rows = list(
        await session.scalars(
            select(Session)
            .where(flat, Session.status == SessionStatus.ENDED)
            .order_by(Session.started_at.desc(), Session.id.desc())
            .limit(RECENT_ENDED)
        )
    )
    active = {view.product: view for view in await views(session, active_rows, now)}
    ended: dict[str, SessionView] = {}
    for row in ended_rows:
        if row.product not in active and row.product not in ended:
            ended[row.product] = SessionView.of(row, now)
    return FlatSessions(active, ended)
