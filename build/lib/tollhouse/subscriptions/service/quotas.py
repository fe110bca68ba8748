"""Quotas: a plan's cap per meter per billing period, counted exactly from usage events.

`used` is the meter's aggregation over the usage events of the current period
(`period_start <= occurred_at < period_end`): the sum (or count) for counters, the maximum
for level meters such as `storage_bytes` (the peak reported in the period; a period without
a report counts 0). Nothing is stored that could drift: the numbers come from the immutable,
idempotent `usage_events` rows, so a retried event never counts twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from math import ceil

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Aggregation, Catalog
from tollhouse.clock import Clock
from tollhouse.events import service as events
from tollhouse.metering import service as metering
from tollhouse.subscriptions.errors import QuotaExceeded
from tollhouse.subscriptions.models import QuotaNotice, Subscription
from tollhouse.subscriptions.periods import PeriodInterval, next_period
from tollhouse.subscriptions.service import _state as state


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """One meter in the current period, in the meter's unit."""

    meter: str
    used: int
    limit: int | None
    """The plan's cap; None = uncapped."""
    remaining: int | None
    """`max(0, limit - used)`; None when uncapped."""
    resets_at: datetime
    """The current period's end (UTC)."""
    aggregation: Aggregation = "sum"
    unit: str = ""


def current_period(
    sub: Subscription, now: datetime, interval: PeriodInterval = "month"
) -> tuple[datetime, datetime]:
    """The billing period containing `now`: the stored one, or, when `roll_over` has not yet
    reached a passed boundary, the period that follows it on the calendar (so quotas reset
    on time even if the job runs late)."""
    start, end = sub.current_period_start, sub.current_period_end
    steps = 0
    while end <= now and steps < state.MAX_ROLLS_PER_RUN:
        start, end = next_period(sub.billing_anchor_day, sub.timezone, end, interval)
        steps += 1
    return start, end


async def quota_usage(
    session: AsyncSession,
    customer_id: str,
    *,
    catalog: Catalog,
    clock: Clock,
    meters: list[str] | None = None,
) -> list[QuotaStatus]:
    """Usage against the plan's caps in the current period, one entry per catalog meter
    (or per name in `meters`), in catalog order; capped meters have a `limit`.

    Raises:
        SubscriptionNotFound: the customer has no subscription.
        PlanNotFound: the subscription's plan left the catalog.
    """
    sub = await state.load(session, customer_id, lock=False)
    plan = catalog.plan(sub.plan)
    now = clock.now()
    start, end = current_period(sub, now, plan.interval)
    wanted = [m for m in catalog.meters if meters is None or m in meters]
    aggregations = catalog.aggregations(wanted)
    totals = (
        await metering.totals(
            session, customer_id=customer_id, meters=aggregations, start=start, end=end
        )
        if aggregations
        else {}
    )
    result: list[QuotaStatus] = []
    for name in wanted:
        used = totals.get(name, 0)
        limit = plan.quota(name)
        result.append(
            QuotaStatus(
                meter=name,
                used=used,
                limit=limit,
                remaining=None if limit is None else max(0, limit - used),
                resets_at=end,
                aggregation=aggregations[name],
                unit=catalog.meters[name].unit,
            )
        )
    return result


def check_quota(
    *,
    meter: str,
    used: int,
    requested: int,
    limit: int | None,
    resets_at: datetime,
    now: datetime,
    aggregation: Aggregation = "sum",
) -> None:
    """Allow a request for `requested` units when it keeps the meter within `limit`.

    Counters (`sum`, `count`): allowed when `used + requested <= limit`. Level meters
    (`max`): `requested` is the new level, allowed when `requested <= limit`. `limit=None`
    always allows. Pure: no I/O.

    Raises:
        QuotaExceeded: the request would pass the cap; `retry_after_seconds` counts whole
            seconds (rounded up, at least 1) until `resets_at`.
    """
    if limit is None:
        return
    after = requested if aggregation == "max" else used + requested
    if after <= limit:
        return
    wait = max(1, ceil((resets_at - now).total_seconds()))
    raise QuotaExceeded(
        f"quota for {meter!r} exceeded: {used} of {limit} used this period, "
        f"{requested} more requested; it resets at {resets_at.isoformat()}",
        meter=meter,
        limit=limit,
        used=used,
        requested=requested,
        resets_at=resets_at.isoformat(),
        retry_after_seconds=wait,
    )


async def enforce_quota(
    session: AsyncSession,
    customer_id: str,
    meter: str,
    requested: int,
    *,
    catalog: Catalog,
    clock: Clock,
) -> QuotaStatus:
    """`quota_usage` for one meter, then `check_quota`: the gateway's pre-flight check.

    Returns the meter's status before the request.

    Raises:
        QuotaExceeded: the request would pass the cap.
        SubscriptionNotFound: no subscription.
        KeyError: `meter` is not a catalog meter.
    """
    if meter not in catalog.meters:
        raise KeyError(meter)
    (status,) = await quota_usage(
        session, customer_id, catalog=catalog, clock=clock, meters=[meter]
    )
    check_quota(
        meter=meter,
        used=status.used,
        requested=requested,
        limit=status.limit,
        resets_at=status.resets_at,
        now=clock.now(),
        aggregation=status.aggregation,
    )
    return status


async def record_quota_reached(
    session: AsyncSession,
    *,
    customer_id: str,
    meter: str,
    limit: int,
    used: int,
    resets_at: datetime,
    refused: bool,
    clock: Clock,
) -> bool:
    """Record that the customer reached the cap of `meter` in the period ending `resets_at`,
    and emit `quota.reached` in the caller's transaction, once per customer, meter and
    period whoever calls it, however often (a `quota_notices` row is its guard).

    `used` is the meter's usage when it was noticed, in its unit; `refused` says it was
    noticed by refusing a call that would pass the cap (else usage reached the cap). Returns
    whether this call recorded it. Nothing is committed here.
    """
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(QuotaNotice)
        .values(
            customer_id=customer_id,
            meter=meter,
            period_end=resets_at,
            limit=limit,
            created_at=clock.now(),
        )
        .on_conflict_do_nothing()
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    await events.emit(
        session,
        customer_id=customer_id,
        type="quota.reached",
        data={
            "meter": meter,
            "limit": limit,
            "used": used,
            "resets_at": resets_at.isoformat(),
            "refused": refused,
        },
        clock=clock,
    )
    return True
