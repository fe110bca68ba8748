"""Which catalog plans the database refers to (what a catalog must keep to be served)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.customers import service as customers
from tollhouse.subscriptions.models import Subscription


async def plans_in_use(session: AsyncSession) -> set[str]:
    """Every plan a customer or a subscription is on, or a subscription is scheduled to move
    to at its period end (`scheduled_plan`)."""
    current = await session.scalars(select(Subscription.plan).distinct())
    scheduled = await session.scalars(
        select(Subscription.scheduled_plan)
        .where(Subscription.scheduled_plan.is_not(None))
        .distinct()
    )
    return (
        set(current) | {plan for plan in scheduled if plan} | await customers.plans_in_use(session)
    )
