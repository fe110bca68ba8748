"""Helpers shared by the subscription service modules: loading, history, charges, the grant
outbox and the period arithmetic of a subscription. Internal: use `service`'s functions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog, Plan
from tollhouse.customers import service as customers
from tollhouse.subscriptions.errors import SubscriptionNotFound
from tollhouse.subscriptions.models import (
    ChargeKind,
    GrantKind,
    HistoryEvent,
    Subscription,
    SubscriptionCharge,
    SubscriptionGrant,
    SubscriptionHistory,
    SubscriptionStatus,
)
from tollhouse.subscriptions.periods import first_period, local_midnight, next_period, zone

ENDED = frozenset({SubscriptionStatus.CANCELED.value, SubscriptionStatus.EXPIRED.value})
"""Statuses whose paid plan is over (the customer is on the default plan)."""

MAX_ROLLS_PER_RUN = 1200
"""Safety bound on the boundaries one subscription is walked over at once: by one `roll_over`
run, and by `current_period` catching up with a late job (100 years monthly)."""


async def load(session: AsyncSession, customer_id: str, *, lock: bool = True) -> Subscription:
    """The customer's subscription, row-locked (`FOR UPDATE` on PostgreSQL) when `lock`.

    Raises:
        SubscriptionNotFound: the customer has none.
    """
    query = select(Subscription).where(Subscription.customer_id == customer_id)
    if lock:
        query = query.with_for_update()
    sub = (await session.scalars(query.execution_options(populate_existing=True))).first()
    if sub is None:
        raise SubscriptionNotFound(
            f"customer {customer_id!r} has no subscription", customer_id=customer_id
        )
    return sub


def record(
    session: AsyncSession,
    sub: Subscription,
    event: HistoryEvent,
    at: datetime,
    *,
    from_plan: str | None = None,
    to_plan: str | None = None,
    **details: Any,
) -> None:
    """Append a history row (flushed with the session)."""
    session.add(
        SubscriptionHistory(
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            at=at,
            event=event.value,
            from_plan=from_plan,
            to_plan=to_plan,
            details=details,
        )
    )


async def charge(
    session: AsyncSession,
    sub: Subscription,
    *,
    kind: ChargeKind,
    amount_micros: int,
    plan: str,
    start: datetime,
    end: datetime,
    key: str,
    description: str,
    currency: str,
    now: datetime,
) -> bool:
    """Record a pending invoice item unless `key` exists or the amount is 0. True if new."""
    if amount_micros == 0 or await _exists(session, SubscriptionCharge, key):
        return False
    session.add(
        SubscriptionCharge(
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            kind=kind.value,
            amount_micros=amount_micros,
            currency=currency,
            plan=plan,
            period_start=start,
            period_end=end,
            description=description,
            idempotency_key=key,
            created_at=now,
        )
    )
    return True


async def owe(
    session: AsyncSession,
    sub: Subscription,
    *,
    kind: GrantKind,
    amount_micros: int,
    plan: str,
    period_start: datetime,
    expires_at: datetime | None,
    key: str,
    description: str,
    currency: str,
    now: datetime,
) -> bool:
    """Put credits in the grant outbox unless `key` exists or the amount is <= 0."""
    if amount_micros <= 0 or await _exists(session, SubscriptionGrant, key):
        return False
    session.add(
        SubscriptionGrant(
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            kind=kind.value,
            amount_micros=amount_micros,
            currency=currency,
            plan=plan,
            period_start=period_start,
            expires_at=expires_at,
            idempotency_key=key,
            description=description,
            created_at=now,
            delivered_at=None,
            grant_id=None,
            outcome="pending",
        )
    )
    return True


async def _exists(
    session: AsyncSession, model: type[SubscriptionCharge | SubscriptionGrant], key: str
) -> bool:
    found = await session.scalar(select(model.id).where(model.idempotency_key == key))
    return found is not None


def included_key(sub_id: str, period_start: datetime) -> str:
    """The ledger key of a period's included credits (as the design names it)."""
    return f"included:{sub_id}:{period_start.isoformat()}"


def once_key(sub_id: str, plan: str) -> str:
    """The ledger key of a one-off (lifetime) plan's included credits."""
    return f"included:{sub_id}:once:{plan}"


async def start_period(
    session: AsyncSession,
    sub: Subscription,
    plan: Plan,
    *,
    catalog: Catalog,
    now: datetime,
) -> int:
    """Charge the fee and owe the included credits of the period the subscription is in now.
    Idempotent (every line has a unique key). Returns the micros newly owed (0 when nothing
    was owed, e.g. past due or the key already present).

    Trialing: no fee. Past due: fee, no credits (owed when a payment method arrives). A
    one-off plan is charged and credited once per subscription (keys without a period); its
    monthly periods carry neither.
    """
    start, end = sub.current_period_start, sub.current_period_end
    status = sub.status
    if not plan.is_recurring:
        await charge(
            session, sub, kind=ChargeKind.SUBSCRIPTION_FEE, amount_micros=plan.price_micros,
            plan=plan.name, start=start, end=end, key=f"fee:{sub.id}:once:{plan.name}",
            description=f"{plan.name} (one-off)", currency=catalog.currency, now=now,
        )  # fmt: skip
    elif status != SubscriptionStatus.TRIALING:
        await charge(
            session, sub, kind=ChargeKind.SUBSCRIPTION_FEE, amount_micros=plan.price_micros,
            plan=plan.name, start=start, end=end, key=f"fee:{sub.id}:{start.isoformat()}",
            description=f"{plan.name} {start.date()} - {end.date()}",
            currency=catalog.currency, now=now,
        )  # fmt: skip
    if status == SubscriptionStatus.PAST_DUE:
        return 0
    return await owe_included(session, sub, plan, catalog=catalog, now=now)


async def owe_included(
    session: AsyncSession, sub: Subscription, plan: Plan, *, catalog: Catalog, now: datetime
) -> int:
    """Owe the included credits of the current period (recurring plan) or of the one-off
    plan (once per subscription). Idempotent by key; returns the micros newly owed."""
    start, end = sub.current_period_start, sub.current_period_end
    amount = plan.included_credits_micros
    if plan.is_recurring:
        owed = await owe(
            session, sub, kind=GrantKind.INCLUDED, amount_micros=amount, plan=plan.name,
            period_start=start, expires_at=end, key=included_key(sub.id, start),
            description=f"{plan.name}: included credits {start.date()} - {end.date()}",
            currency=catalog.currency, now=now,
        )  # fmt: skip
    else:
        owed = await owe(
            session, sub, kind=GrantKind.INCLUDED, amount_micros=amount, plan=plan.name,
            period_start=start, expires_at=None, key=once_key(sub.id, plan.name),
            description=f"{plan.name}: included credits", currency=catalog.currency, now=now,
        )  # fmt: skip
    return amount if owed else 0


def begin_plan(sub: Subscription, plan: Plan, *, at: datetime) -> None:
    """Put `sub` on `plan` from `at`: a fresh period `[at, next boundary)` anchored on the
    local day of `at` (a trial for a paid plan with trial days is handled by the caller)."""
    tz = zone(sub.timezone)
    sub.billing_anchor_day = at.astimezone(tz).day
    sub.current_period_start, sub.current_period_end = first_period(
        sub.billing_anchor_day, tz, at, plan.interval
    )
    sub.plan = plan.name


def trial_end_for(plan: Plan, tz_name: str, at: datetime) -> datetime:
    """Local midnight `plan.trial_days` days after the local day of `at` (UTC)."""
    tz = zone(tz_name)
    return local_midnight(at.astimezone(tz).date() + timedelta(days=plan.trial_days), tz)


def following_period(sub: Subscription, plan: Plan) -> tuple[datetime, datetime]:
    """The period after the current one, on `plan`'s interval."""
    return next_period(sub.billing_anchor_day, sub.timezone, sub.current_period_end, plan.interval)


async def sync_customer_plan(session: AsyncSession, sub: Subscription) -> None:
    """Mirror the subscription's plan on the customer row (the gateway reads it there)."""
    await customers.set_plan(session, sub.customer_id, sub.plan)


def has_trial(plan: Plan) -> bool:
    """A new subscription to `plan` starts trialing: trial days and a price."""
    return plan.trial_days > 0 and plan.price_micros > 0 and plan.is_recurring
