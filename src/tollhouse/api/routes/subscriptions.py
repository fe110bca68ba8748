"""Plans and subscriptions: read the plan and its quotas, change, cancel, resume.

Customer keys act on their own subscription (`/v1/subscription/...`; changes need the `admin`
scope); operator keys name the customer (`?customer_id=`) or use
`/v1/customers/{id}/subscription`. After a change commits, the credits it owes are delivered
to the ledger and every cache holding the customer's plan is dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field

from tollhouse.api import problems
from tollhouse.api.deps import ME, Admin, Reader, RuntimeDep, customer_of, require_operator
from tollhouse.api.routes.catalog import PlanOut
from tollhouse.api.schemas import MAX_ROW_ID, RequestBody, ResponseBody
from tollhouse.keys import Principal
from tollhouse.server.runtime import Runtime
from tollhouse.subscriptions import Subscription, SubscriptionHistory
from tollhouse.subscriptions import service as subscriptions

router = APIRouter(prefix="/v1", tags=["subscriptions"], responses=problems.responses(401, 403))


class SubscriptionOut(ResponseBody):
    id: str
    customer_id: str
    plan: str
    status: str
    """trialing, active, past_due, canceled or expired."""
    timezone: str
    billing_anchor_day: int
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    cancel_at_period_end: bool
    scheduled_plan: str | None
    """The plan that starts at the period end (a scheduled downgrade)."""
    canceled_at: datetime | None
    has_payment_method: bool

    @classmethod
    def of(cls, sub: Subscription) -> SubscriptionOut:
        return cls(
            id=sub.id,
            customer_id=sub.customer_id,
            plan=sub.plan,
            status=sub.status,
            timezone=sub.timezone,
            billing_anchor_day=sub.billing_anchor_day,
            current_period_start=sub.current_period_start,
            current_period_end=sub.current_period_end,
            trial_end=sub.trial_end,
            cancel_at_period_end=sub.cancel_at_period_end,
            scheduled_plan=sub.scheduled_plan,
            canceled_at=sub.canceled_at,
            has_payment_method=sub.has_payment_method,
        )


class QuotaOut(ResponseBody):
    meter: str
    used: int
    limit: int | None
    remaining: int | None
    resets_at: datetime
    unit: str


class ChangeIn(RequestBody):
    plan: str = Field(min_length=1, max_length=64)


class CancelIn(RequestBody):
    at_period_end: bool = True
    """False cancels now (no refund); the customer falls back to the default plan."""


class PaymentMethodIn(RequestBody):
    has_payment_method: bool


class ChangeOut(ResponseBody):
    subscription: SubscriptionOut
    kind: str
    """upgraded (now), downgrade_scheduled (at the period end) or resubscribed."""
    from_plan: str
    to_plan: str
    effective_at: datetime
    proration_credit_micros: int
    proration_charge_micros: int
    credits_granted_micros: int


class HistoryOut(ResponseBody):
    id: int
    at: datetime
    event: str
    from_plan: str | None
    to_plan: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, row: SubscriptionHistory) -> HistoryOut:
        return cls(
            id=row.id,
            at=row.at,
            event=row.event,
            from_plan=row.from_plan,
            to_plan=row.to_plan,
            details=row.details,
        )


async def _after_change(runtime: Runtime, customer_id: str) -> None:
    """Deliver owed credits and drop every cache of the customer's plan."""
    await subscriptions.deliver_grants(
        runtime.db, ledger=runtime.ledger, clock=runtime.clock, customer_id=customer_id
    )
    await runtime.invalidate_customer(customer_id)


def _target(principal: Principal, customer_id: str | None) -> str:
    return customer_of(principal, customer_id or ME)


@router.get("/plans")
async def list_plans(_: Reader, runtime: RuntimeDep) -> list[PlanOut]:
    """Every plan of the catalog, cheapest rank first."""
    ranked = sorted(runtime.catalog.plans.values(), key=lambda p: p.rank)
    return [PlanOut.of(plan) for plan in ranked]


@router.get("/subscription/me", responses=problems.responses(404, 422))
async def my_subscription(
    principal: Reader, runtime: RuntimeDep, customer_id: str | None = Query(default=None)
) -> SubscriptionOut:
    """The subscription of the key's customer (operators: `?customer_id=`)."""
    owner = _target(principal, customer_id)
    async with runtime.db.transaction() as session:
        return SubscriptionOut.of(await subscriptions.get_subscription(session, owner))


@router.get("/subscription/usage", responses=problems.responses(404, 422))
async def subscription_usage(
    principal: Reader, runtime: RuntimeDep, customer_id: str | None = Query(default=None)
) -> list[QuotaOut]:
    """Each meter in the current period: used, limit, remaining, resets_at (exact, from events)."""
    owner = _target(principal, customer_id)
    async with runtime.db.transaction() as session:
        statuses = await subscriptions.quota_usage(
            session, owner, catalog=runtime.catalog, clock=runtime.clock
        )
    return [
        QuotaOut(
            meter=s.meter,
            used=s.used,
            limit=s.limit,
            remaining=s.remaining,
            resets_at=s.resets_at,
            unit=s.unit,
        )
        for s in statuses
    ]


@router.get("/subscription/history", responses=problems.responses(404, 422))
async def subscription_history(
    principal: Reader,
    runtime: RuntimeDep,
    customer_id: str | None = Query(default=None),
    limit: int = Query(default=100, ge=1, le=1000),
    before_id: int | None = Query(default=None, ge=1, le=MAX_ROW_ID),
) -> list[HistoryOut]:
    """Every change of the subscription, newest first."""
    owner = _target(principal, customer_id)
    async with runtime.db.transaction() as session:
        rows = await subscriptions.history(session, owner, limit=limit, before_id=before_id)
    return [HistoryOut.of(row) for row in rows]


@router.post("/subscription/change", responses=problems.responses(400, 402, 404, 409, 413, 422))
async def change_plan(
    body: ChangeIn,
    principal: Admin,
    runtime: RuntimeDep,
    customer_id: str | None = Query(default=None),
) -> ChangeOut:
    """Upgrade now (prorated, Stripe's model) or downgrade at the period end. A customer
    choosing a paid plan needs a payment method on file (402 `payment-method-required`:
    pay it through `POST /v1/checkout`); an operator's change is manual billing."""
    owner = _target(principal, customer_id)
    change = await runtime.change_plan(
        owner, body.plan, require_payment_method=not principal.is_operator
    )
    proration = change.proration
    return ChangeOut(
        subscription=SubscriptionOut.of(change.subscription),
        kind=change.kind,
        from_plan=change.from_plan,
        to_plan=change.to_plan,
        effective_at=change.effective_at,
        proration_credit_micros=proration.credit_micros if proration else 0,
        proration_charge_micros=proration.charge_micros if proration else 0,
        credits_granted_micros=change.credits_owed_micros,
    )


@router.post("/subscription/cancel", responses=problems.responses(400, 404, 409, 413, 422))
async def cancel(
    body: CancelIn,
    principal: Admin,
    runtime: RuntimeDep,
    customer_id: str | None = Query(default=None),
) -> SubscriptionOut:
    """Cancel at the period end (default) or now."""
    owner = _target(principal, customer_id)
    async with runtime.db.transaction() as session:
        sub = await subscriptions.cancel(
            session,
            owner,
            at_period_end=body.at_period_end,
            catalog=runtime.catalog,
            clock=runtime.clock,
        )
    await _after_change(runtime, owner)
    return SubscriptionOut.of(sub)


@router.post("/subscription/resume", responses=problems.responses(404, 409, 422))
async def resume(
    principal: Admin, runtime: RuntimeDep, customer_id: str | None = Query(default=None)
) -> SubscriptionOut:
    """Undo a scheduled cancellation or downgrade."""
    owner = _target(principal, customer_id)
    async with runtime.db.transaction() as session:
        sub = await subscriptions.resume(session, owner, clock=runtime.clock)
    await _after_change(runtime, owner)
    return SubscriptionOut.of(sub)


@router.get("/customers/{customer_id}/subscription", responses=problems.responses(404, 422))
async def customer_subscription(
    customer_id: str, principal: Reader, runtime: RuntimeDep
) -> SubscriptionOut:
    """A customer's subscription (the customer itself, or an operator)."""
    return await my_subscription(principal, runtime, customer_id)


@router.put(
    "/customers/{customer_id}/subscription", responses=problems.responses(400, 404, 409, 413, 422)
)
async def set_customer_plan(
    customer_id: str, body: ChangeIn, principal: Reader, runtime: RuntimeDep
) -> ChangeOut:
    """Operators: move any customer to any plan (same rules as a self-service change)."""
    require_operator(principal)
    return await change_plan(body, principal, runtime, customer_id)


@router.put(
    "/customers/{customer_id}/subscription/payment-method",
    responses=problems.responses(400, 404, 409, 413, 422),
)
async def set_payment_method(
    customer_id: str, body: PaymentMethodIn, principal: Reader, runtime: RuntimeDep
) -> SubscriptionOut:
    """Operators: record whether a payment method is on file (a past_due subscription given
    one becomes active)."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        sub = await subscriptions.set_payment_method(
            session,
            customer_id,
            body.has_payment_method,
            catalog=runtime.catalog,
            clock=runtime.clock,
        )
    await _after_change(runtime, customer_id)
    return SubscriptionOut.of(sub)
