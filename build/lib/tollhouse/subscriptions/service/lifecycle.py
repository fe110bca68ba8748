"""Subscription lifecycle: create, read, change plan, cancel, resume, payment method, history.

Functions take the caller's `AsyncSession`, lock the subscription row (`FOR UPDATE` on
PostgreSQL; every update also checks `version`) and never commit. They never call the ledger:
credits they owe go to the `subscription_grants` outbox in the same transaction, and the
caller hands them to the ledger after the commit with `deliver_grants` (the `roll_over` job
delivers whatever is left, so a crash in between loses nothing). On SQLite this is required:
one connection serves both, and no session may be held across a ledger write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog, Plan
from tollhouse.catalog import service as catalogs
from tollhouse.clock import Clock
from tollhouse.customers import Customer
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput
from tollhouse.ids import new_id
from tollhouse.subscriptions.errors import InvalidPlanChange, SubscriptionCanceled
from tollhouse.subscriptions.models import (
    ChargeKind,
    GrantKind,
    HistoryEvent,
    Subscription,
    SubscriptionHistory,
    SubscriptionStatus,
)
from tollhouse.subscriptions.periods import zone
from tollhouse.subscriptions.proration import Proration, prorate, prorate_credits
from tollhouse.subscriptions.service import _state as state

ChangeKind = Literal["upgraded", "downgrade_scheduled", "resubscribed"]


@dataclass(frozen=True, slots=True)
class PlanChange:
    """What `change_plan` did. Money in micros."""

    subscription: Subscription
    kind: ChangeKind
    """`upgraded` (now), `downgrade_scheduled` (at period end) or `resubscribed` (a canceled
    or expired subscription started again on a plan, now)."""
    from_plan: str
    to_plan: str
    effective_at: datetime
    """When the new plan applies (now, or the period end for a downgrade)."""
    proration: Proration | None = None
    """The upgrade's proration lines (None when nothing was prorated)."""
    credits_owed_micros: int = 0
    """Included credits put in the grant outbox by this change."""


async def create_customer(
    session: AsyncSession,
    *,
    name: str,
    email: str | None = None,
    external_id: str | None = None,
    plan: str | None = None,
    timezone: str = "UTC",
    catalog: Catalog,
    clock: Clock,
) -> Customer:
    """Onboard a customer: create it and subscribe it at once to `plan` (default: the
    catalog's default plan) in `timezone`, in the caller's transaction. The plan's included
    credits go to the outbox: call `deliver_grants` after the commit.

    Raises:
        PlanNotFound: unknown plan.
        NotInCatalogInForce: `catalog` is not the catalog in force, which lacks the plan.
        InvalidInput: invalid name, email, external_id or time zone.
        CustomerExists: another customer has `external_id`.
    """
    chosen = catalog.plan(plan or catalog.default_plan).name
    await catalogs.require_in_force(session, catalog, plans=[chosen])
    customer = await customers.create(
        session, name=name, email=email, external_id=external_id, plan=chosen, clock=clock
    )
    await ensure_subscription(
        session, customer.id, catalog=catalog, clock=clock, timezone=timezone, plan=chosen
    )
    return customer


async def ensure_subscription(
    session: AsyncSession,
    customer_id: str,
    *,
    catalog: Catalog,
    clock: Clock,
    timezone: str = "UTC",
    plan: str | None = None,
) -> Subscription:
    """The customer's subscription, created on `plan` (default: the catalog's default plan)
    if it has none. Idempotent: an existing subscription is returned unchanged.

    A new subscription to a plan with `trial_days` and a price starts `trialing` until local
    midnight `trial_days` days on (that trial is its first period); any other starts `active`
    with a first period `[now, next boundary)` anchored on today's local day. The first
    period's fee is recorded and its included credits are owed (`deliver_grants`).

    Raises:
        CustomerNotFound: no such customer.
        PlanNotFound: unknown plan.
        InvalidInput: unknown time zone.
    """
    existing = (
        await session.scalars(select(Subscription).where(Subscription.customer_id == customer_id))
    ).first()
    if existing is not None:
        return existing
    await customers.get(session, customer_id)
    chosen = catalog.plan(plan or catalog.default_plan)
    try:
        zone(timezone)
    except ValueError:
        raise InvalidInput(
            f"unknown time zone {timezone!r}",
            errors=[{"loc": "timezone", "msg": "must be an IANA time zone name"}],
        ) from None
    now = clock.now()
    sub = Subscription(
        id=new_id("sub"),
        customer_id=customer_id,
        status=SubscriptionStatus.ACTIVE.value,
        timezone=timezone,
        trial_end=None,
        cancel_at_period_end=False,
        scheduled_plan=None,
        canceled_at=None,
        ended_at=None,
        has_payment_method=False,
        created_at=now,
        updated_at=now,
    )
    state.begin_plan(sub, chosen, at=now)
    if state.has_trial(chosen):
        sub.status = SubscriptionStatus.TRIALING.value
        sub.trial_end = state.trial_end_for(chosen, timezone, now)
        sub.current_period_end = sub.trial_end
    try:
        async with session.begin_nested():
            session.add(sub)
    except IntegrityError:
        # Another transaction created it first (unique customer_id): use theirs.
        return await state.load(session, customer_id, lock=False)
    state.record(session, sub, HistoryEvent.CREATED, now, to_plan=chosen.name, **_period(sub))
    if sub.status == SubscriptionStatus.TRIALING:
        state.record(
            session, sub, HistoryEvent.TRIAL_STARTED, now, to_plan=chosen.name,
            trial_end=_iso(sub.trial_end),
        )  # fmt: skip
    await state.start_period(session, sub, chosen, catalog=catalog, now=now)
    await state.sync_customer_plan(session, sub)
    await session.flush()
    return sub


async def get_subscription(session: AsyncSession, customer_id: str) -> Subscription:
    """The customer's subscription (no lock).

    Raises:
        SubscriptionNotFound: the customer has none.
    """
    return await state.load(session, customer_id, lock=False)


async def change_plan(
    session: AsyncSession,
    customer_id: str,
    new_plan: str,
    *,
    catalog: Catalog,
    clock: Clock,
) -> PlanChange:
    """Move the customer to `new_plan`.

    - Higher rank: an upgrade, now. Same interval: the period stays; Stripe's proration
      lines are recorded (`proration_credit` for the old price's unused time,
      `proration_charge` for the new price's remaining time; none while trialing) and the
      difference of included credits, prorated the same way and rounded down, is owed as an
      `upgrade` grant expiring at period end. Another interval (month <-> year, or to/from a
      one-off plan): the old plan's unused time is credited, a new period starts now with
      the new plan's full fee and included credits. A scheduled downgrade is dropped.
    - Lower rank: a downgrade, scheduled for the period end (`scheduled_plan`); a later
      call replaces it, `resume` undoes it.
    - Canceled or expired subscription: starts again on `new_plan` now (`resubscribed`,
      active, fresh period, full fee and credits; no second trial).

    Raises:
        SubscriptionNotFound: the customer has no subscription.
        PlanNotFound: unknown plan.
        NotInCatalogInForce: `catalog` is not the catalog in force, which lacks `new_plan`.
        InvalidPlanChange: already on `new_plan`; downgrading a one-off (lifetime) plan;
            a cancellation is scheduled (resume first).
    """
    sub = await state.load(session, customer_id)
    target = catalog.plan(new_plan)
    await catalogs.require_in_force(session, catalog, plans=[target.name])
    current = catalog.plan(sub.plan)
    now = clock.now()
    if target.name == current.name:
        raise InvalidPlanChange(
            f"the subscription is already on plan {target.name!r}",
            plan=current.name, new_plan=target.name,
        )  # fmt: skip
    if sub.status in state.ENDED:
        return await _resubscribe(session, sub, current, target, catalog=catalog, now=now)
    if sub.cancel_at_period_end:
        raise InvalidPlanChange(
            "a cancellation is scheduled for the period end; resume it before changing plan",
            plan=current.name, new_plan=target.name,
        )  # fmt: skip
    if target.rank > current.rank:
        return await _upgrade(session, sub, current, target, catalog=catalog, now=now)
    if not current.is_recurring:
        raise InvalidPlanChange(
            f"plan {current.name!r} is a one-off purchase and cannot be downgraded; cancel it",
            plan=current.name, new_plan=target.name,
        )  # fmt: skip
    previous = sub.scheduled_plan
    sub.scheduled_plan = target.name
    sub.updated_at = now
    state.record(
        session, sub, HistoryEvent.DOWNGRADE_SCHEDULED, now, from_plan=current.name,
        to_plan=target.name, effective_at=_iso(sub.current_period_end), replaced=previous,
    )  # fmt: skip
    await session.flush()
    return PlanChange(sub, "downgrade_scheduled", current.name, target.name, sub.current_period_end)


async def _upgrade(
    session: AsyncSession,
    sub: Subscription,
    current: Plan,
    target: Plan,
    *,
    catalog: Catalog,
    now: datetime,
) -> PlanChange:
    start, end = sub.current_period_start, sub.current_period_end
    paying = sub.status != SubscriptionStatus.TRIALING
    same_cycle = current.interval == target.interval and target.is_recurring
    old_price = current.price_micros if paying and current.is_recurring else 0
    proration: Proration | None = None
    owed = 0
    if same_cycle:
        new_price = target.price_micros if paying else 0
        proration = prorate(
            old_price_micros=old_price, new_price_micros=new_price,
            period_start=start, period_end=end, at=now,
        )  # fmt: skip
        await _proration_lines(session, sub, proration, current, target, catalog, now, end)
        if sub.status != SubscriptionStatus.PAST_DUE:
            extra = target.included_credits_micros - current.included_credits_micros
            owed = prorate_credits(
                max(0, extra),
                remaining_seconds=proration.remaining_seconds,
                period_seconds=proration.period_seconds,
            )
            written = await state.owe(
                session, sub, kind=GrantKind.UPGRADE, amount_micros=owed, plan=target.name,
                period_start=start, expires_at=end,
                key=f"upgrade:{sub.id}:{start.isoformat()}:{target.name}",
                description=f"{current.name} -> {target.name}: included credits, prorated",
                currency=catalog.currency, now=now,
            )  # fmt: skip
            owed = owed if written else 0
        sub.plan = target.name
    else:
        if old_price:
            proration = prorate(
                old_price_micros=old_price, new_price_micros=0,
                period_start=start, period_end=end, at=now,
            )  # fmt: skip
            await _proration_lines(session, sub, proration, current, target, catalog, now, end)
        state.begin_plan(sub, target, at=now)
        if sub.status == SubscriptionStatus.TRIALING:
            sub.status = SubscriptionStatus.ACTIVE.value  # a new cycle ends the trial
        owed = await state.start_period(session, sub, target, catalog=catalog, now=now)
    sub.scheduled_plan = None
    sub.updated_at = now
    state.record(
        session, sub, HistoryEvent.UPGRADED, now, from_plan=current.name, to_plan=target.name,
        credit_micros=proration.credit_micros if proration else 0,
        charge_micros=proration.charge_micros if proration else 0,
        credits_owed_micros=owed, **_period(sub),
    )  # fmt: skip
    await state.sync_customer_plan(session, sub)
    await session.flush()
    return PlanChange(sub, "upgraded", current.name, target.name, now, proration, owed)


async def _proration_lines(
    session: AsyncSession,
    sub: Subscription,
    proration: Proration,
    current: Plan,
    target: Plan,
    catalog: Catalog,
    now: datetime,
    end: datetime,
) -> None:
    base = f"proration:{sub.id}:{now.isoformat()}:{current.name}:{target.name}"
    await state.charge(
        session, sub, kind=ChargeKind.PRORATION_CREDIT, amount_micros=proration.credit_micros,
        plan=current.name, start=now, end=end, key=f"{base}:credit",
        description=f"Unused time on {current.name} until {end.date()}",
        currency=catalog.currency, now=now,
    )  # fmt: skip
    await state.charge(
        session, sub, kind=ChargeKind.PRORATION_CHARGE, amount_micros=proration.charge_micros,
        plan=target.name, start=now, end=end, key=f"{base}:charge",
        description=f"Remaining time on {target.name} until {end.date()}",
        currency=catalog.currency, now=now,
    )  # fmt: skip


async def _resubscribe(
    session: AsyncSession,
    sub: Subscription,
    current: Plan,
    target: Plan,
    *,
    catalog: Catalog,
    now: datetime,
) -> PlanChange:
    state.begin_plan(sub, target, at=now)
    sub.status = SubscriptionStatus.ACTIVE.value
    sub.trial_end = None
    sub.cancel_at_period_end = False
    sub.scheduled_plan = None
    sub.canceled_at = None
    sub.ended_at = None
    sub.updated_at = now
    state.record(
        session, sub, HistoryEvent.ACTIVATED, now, from_plan=current.name, to_plan=target.name,
        reason="resubscribed", **_period(sub),
    )  # fmt: skip
    owed = await state.start_period(session, sub, target, catalog=catalog, now=now)
    await state.sync_customer_plan(session, sub)
    await session.flush()
    return PlanChange(sub, "resubscribed", current.name, target.name, now, None, owed)


async def cancel(
    session: AsyncSession,
    customer_id: str,
    *,
    at_period_end: bool,
    catalog: Catalog,
    clock: Clock,
) -> Subscription:
    """Cancel the subscription now or at the period end.

    At period end: `cancel_at_period_end` is set (a scheduled downgrade is dropped); the plan
    stays until `roll_over` reaches the boundary, `resume` undoes it. Now: status `canceled`,
    the plan falls back to the catalog's default plan on a fresh period starting now (so the
    customer keeps free access with fresh quotas and the default plan's included credits).
    No refund is recorded for the unused time (Stripe's default for immediate cancellation).
    Credits already granted keep their expiry.

    Raises:
        SubscriptionNotFound: no subscription.
        SubscriptionCanceled: already canceled or expired.
        NotInCatalogInForce: `catalog` is not the one in force, which lacks its default plan.
    """
    sub = await state.load(session, customer_id)
    if sub.status in state.ENDED:
        raise SubscriptionCanceled(
            f"the subscription is already {sub.status}", subscription_status=sub.status
        )
    await catalogs.require_in_force(session, catalog, plans=[catalog.default_plan])
    now = clock.now()
    sub.updated_at = now
    sub.canceled_at = now
    if at_period_end:
        dropped = sub.scheduled_plan
        sub.cancel_at_period_end = True
        sub.scheduled_plan = None
        state.record(
            session, sub, HistoryEvent.CANCEL_SCHEDULED, now, from_plan=sub.plan,
            to_plan=catalog.default_plan, effective_at=_iso(sub.current_period_end),
            dropped_downgrade=dropped,
        )  # fmt: skip
        await session.flush()
        return sub
    old = sub.plan
    fallback = catalog.plan(catalog.default_plan)
    sub.status = SubscriptionStatus.CANCELED.value
    sub.ended_at = now
    sub.cancel_at_period_end = False
    sub.scheduled_plan = None
    state.begin_plan(sub, fallback, at=now)
    state.record(
        session, sub, HistoryEvent.CANCELED, now, from_plan=old, to_plan=fallback.name,
        **_period(sub),
    )  # fmt: skip
    await state.start_period(session, sub, fallback, catalog=catalog, now=now)
    await state.sync_customer_plan(session, sub)
    await session.flush()
    return sub


async def resume(session: AsyncSession, customer_id: str, *, clock: Clock) -> Subscription:
    """Undo a scheduled cancellation or downgrade; the current plan continues.

    Raises:
        SubscriptionNotFound: no subscription.
        SubscriptionCanceled: the subscription is canceled or expired (subscribe again with
            `change_plan`).
        InvalidPlanChange: nothing is scheduled.
    """
    sub = await state.load(session, customer_id)
    if sub.status in state.ENDED:
        raise SubscriptionCanceled(
            f"a {sub.status} subscription cannot be resumed; change plan to subscribe again",
            subscription_status=sub.status,
        )
    if not sub.cancel_at_period_end and sub.scheduled_plan is None:
        raise InvalidPlanChange("nothing is scheduled to undo", plan=sub.plan, new_plan=sub.plan)
    now = clock.now()
    state.record(
        session, sub, HistoryEvent.RESUMED, now, from_plan=sub.plan, to_plan=sub.plan,
        undone_cancel=sub.cancel_at_period_end, undone_downgrade=sub.scheduled_plan,
    )  # fmt: skip
    sub.cancel_at_period_end = False
    sub.canceled_at = None
    sub.scheduled_plan = None
    sub.updated_at = now
    await session.flush()
    return sub


async def set_payment_method(
    session: AsyncSession,
    customer_id: str,
    has_payment_method: bool,
    *,
    catalog: Catalog,
    clock: Clock,
) -> Subscription:
    """Record whether a payment method is on file. A `past_due` subscription given one
    becomes `active` at once, and the current period's included credits are owed.

    Raises:
        SubscriptionNotFound: no subscription.
        NotInCatalogInForce: activating, and `catalog` is not the one in force, which lacks
            the plan or has other terms for it.
    """
    sub = await state.load(session, customer_id)
    now = clock.now()
    if has_payment_method and sub.status == SubscriptionStatus.PAST_DUE:
        await catalogs.require_in_force(session, catalog, plans=[sub.plan])
    if sub.has_payment_method != has_payment_method:
        sub.has_payment_method = has_payment_method
        sub.updated_at = now
        state.record(
            session, sub, HistoryEvent.PAYMENT_METHOD_SET, now,
            has_payment_method=has_payment_method,
        )  # fmt: skip
    if has_payment_method and sub.status == SubscriptionStatus.PAST_DUE:
        sub.status = SubscriptionStatus.ACTIVE.value
        sub.updated_at = now
        plan = catalog.plan(sub.plan)
        state.record(
            session, sub, HistoryEvent.ACTIVATED, now, to_plan=sub.plan, reason="payment_method"
        )
        await state.owe_included(session, sub, plan, catalog=catalog, now=now)
    await session.flush()
    return sub


async def history(
    session: AsyncSession, customer_id: str, *, limit: int = 100, before_id: int | None = None
) -> list[SubscriptionHistory]:
    """The subscription's history, newest first; page with `before_id` = last row's id.

    `limit` is clamped to 1..1000.

    Raises:
        SubscriptionNotFound: no subscription.
    """
    sub = await state.load(session, customer_id, lock=False)
    query = select(SubscriptionHistory).where(SubscriptionHistory.subscription_id == sub.id)
    if before_id is not None:
        query = query.where(SubscriptionHistory.id < before_id)
    query = query.order_by(SubscriptionHistory.id.desc()).limit(max(1, min(limit, 1000)))
    return list(await session.scalars(query))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _period(sub: Subscription) -> dict[str, str | None]:
    return {
        "period_start": _iso(sub.current_period_start),
        "period_end": _iso(sub.current_period_end),
    }
