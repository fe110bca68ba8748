"""Operator reads over every customer's sessions: how many started per UTC day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.sessions.models import Session
from tollhouse.storage.base import utc_window_start


async def started_per_day(
    session: AsyncSession, *, start: datetime, end: datetime
) -> dict[datetime, int]:
    """Sessions (flat and metered, every customer) started in `[start, end)`, per UTC day
    (the day's aware midnight -> count), oldest first; days without a start are left out."""
    day = utc_window_start(Session.started_at, "day", session.get_bind().dialect.name)
    rows = await session.execute(
        select(day.label("day"), func.count().label("started"))
        .where(Session.started_at >= start, Session.started_at < end)
        .group_by(day)
        .order_by(day)
    )
    return {row.day: int(row.started) for row in rows}
