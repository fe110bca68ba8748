"""What the billing domain reads of a subscription: when its billing periods began, and the
charges (fees, prorations) recorded for it. Reads only; nothing here writes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.subscriptions.models import SubscriptionCharge, SubscriptionHistory
from tollhouse.subscriptions.service import _state as state


async def period_starts(session: AsyncSession, customer_id: str) -> list[datetime]:
    """Every instant a billing period of the customer's subscription began, ascending and
    distinct (UTC): its creation (or trial), each boundary the rollover crossed, and each
    restart (an upgrade to another interval, a cancellation now, a resubscription). The
    last one is `current_period_start`.

    Read from the history, whose period-starting rows (`created`, `period_rolled`,
    `upgraded`, `canceled`, `activated` on a resubscription) carry `details.period_start`.

    Raises:
        SubscriptionNotFound: the customer has no subscription.
    """
    sub = await state.load(session, customer_id, lock=False)
    details = await session.scalars(
        select(SubscriptionHistory.details).where(SubscriptionHistory.subscription_id == sub.id)
    )
    starts = {
        datetime.fromisoformat(recorded["period_start"])
        for recorded in details
        if isinstance(recorded, dict) and recorded.get("period_start")
    }
    starts.add(sub.current_period_start)
    return sorted(starts)


async def list_charges(
    session: AsyncSession, customer_id: str, *, through: datetime
) -> list[SubscriptionCharge]:
    """The customer's recorded charges (fees and prorations, `subscription_charges`) whose
    `period_start` is at or before `through`, in the order they were recorded. Charges are
    never updated: which ones an invoice billed is the billing domain's record."""
    query = (
        select(SubscriptionCharge)
        .where(
            SubscriptionCharge.customer_id == customer_id,
            SubscriptionCharge.period_start <= through,
        )
        .order_by(SubscriptionCharge.id)
    )
    return list(await session.scalars(query))
