"""Stripe subscriptions kept in step with tollhouse's: a plan checkout subscribes the customer,
invoices move it between `active` and `past_due`, updates and deletions follow Stripe.

Events may arrive out of order (docs.stripe.com/webhooks#event-ordering): each Stripe
subscription remembers the `created` time of the last event applied to it
(`provider_subscriptions.last_event_at`), read under a row lock; an older event changes
nothing (`stale`). Each handler runs in ONE transaction that first records the event id,
then the change, then its `subscription.updated` (and `payment.*`) events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse import money
from tollhouse.events import service as events
from tollhouse.payments.models import (
    Checkout,
    CheckoutStatus,
    PaymentKind,
    PaymentStatus,
    Provider,
    ProviderCustomer,
    ProviderSubscription,
)
from tollhouse.payments.service.inbox import AlreadyProcessed, ProviderEvent, mark_processed
from tollhouse.payments.service.records import Context, Terms, record_in_session
from tollhouse.subscriptions import Subscription
from tollhouse.subscriptions import service as subscriptions

PAID_STATUSES = frozenset({"active", "trialing"})
"""Stripe subscription statuses that make tollhouse's `active` (from `past_due`)."""
OVERDUE_STATUSES = frozenset({"past_due", "unpaid"})
"""Stripe statuses that make tollhouse's `past_due`."""
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})
"""Stripe statuses that cancel tollhouse's subscription now."""


@dataclass(frozen=True, slots=True)
class Synced:
    """What a handler did: its outcome and the customer whose plan or status changed."""

    outcome: str
    customer_id: str | None = None
    payment_ids: tuple[str, ...] = ()


async def customer_of(
    session: AsyncSession,
    stripe_customer: str | None,
    metadata: Mapping[str, Any],
    subscription_id: str | None = None,
) -> str | None:
    """The tollhouse customer of a Stripe object: its `tollhouse_customer` metadata, else
    the subscription's, else the Stripe customer's mapping; None when none knows it."""
    named = metadata.get("tollhouse_customer")
    if isinstance(named, str) and named:
        return named
    if subscription_id:
        known = await session.scalar(
            select(ProviderSubscription.customer_id).where(
                ProviderSubscription.provider == Provider.STRIPE.value,
                ProviderSubscription.provider_subscription_id == subscription_id,
            )
        )
        if known is not None:
            return known
    if not stripe_customer:
        return None
    return await session.scalar(
        select(ProviderCustomer.customer_id).where(
            ProviderCustomer.provider == Provider.STRIPE.value,
            ProviderCustomer.provider_customer_id == stripe_customer,
        )
    )


async def _guard(
    session: AsyncSession,
    event: ProviderEvent,
    subscription_id: str,
    *,
    customer_id: str,
    plan: str | None,
    status: str | None,
) -> ProviderSubscription | None:
    """The Stripe subscription's row, locked and advanced to `event` (its status and plan
    updated when given; `updated_at` is the event's time); None when an applied event is
    newer (`event` is stale). Events of one second apply in arrival order."""
    query = select(ProviderSubscription).where(
        ProviderSubscription.provider == Provider.STRIPE.value,
        ProviderSubscription.provider_subscription_id == subscription_id,
    )
    row = await session.scalar(query.with_for_update().execution_options(populate_existing=True))
    now = datetime.fromtimestamp(event.created, UTC)
    if row is None:
        row = ProviderSubscription(
            provider=Provider.STRIPE.value,
            provider_subscription_id=subscription_id,
            customer_id=customer_id,
            plan=plan or "",
            status=status or "active",
            last_event_at=event.created,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(row)
            return row
        except IntegrityError:
            row = await session.scalar(query.with_for_update())
            if row is None:
                raise
    if row.last_event_at > event.created:
        return None
    row.last_event_at = event.created
    row.updated_at = now
    if status is not None:
        row.status = status
    if plan:
        row.plan = plan
    return row


async def _sub_event(
    ctx: Context,
    session: AsyncSession,
    before: str,
    sub: Subscription,
    *,
    provider_subscription: str,
    provider_status: str,
    reason: str,
) -> None:
    await events.emit(
        session,
        customer_id=sub.customer_id,
        type="subscription.updated",
        data={
            "subscription_id": sub.id,
            "plan": sub.plan,
            "status": sub.status,
            "previous_status": before,
            "provider": Provider.STRIPE.value,
            "provider_subscription_id": provider_subscription,
            "provider_status": provider_status,
            "reason": reason,
        },
        clock=ctx.clock,
    )


async def _follow(
    ctx: Context,
    session: AsyncSession,
    customer_id: str,
    provider_status: str,
    *,
    plan: str,
    reason: str,
) -> tuple[str, Subscription]:
    """Move tollhouse's subscription to what Stripe's status says; returns the status before."""
    sub = await subscriptions.get_subscription(session, customer_id)
    before = sub.status
    if provider_status in PAID_STATUSES:
        if sub.status in ("canceled", "expired") and plan:
            await subscriptions.change_plan(
                session, customer_id, plan, catalog=ctx.catalog, clock=ctx.clock
            )
        else:
            await subscriptions.mark_paid(
                session, customer_id, catalog=ctx.catalog, clock=ctx.clock, reason=reason
            )
    elif provider_status in OVERDUE_STATUSES:
        await subscriptions.mark_past_due(session, customer_id, clock=ctx.clock, reason=reason)
    elif provider_status in ENDED_STATUSES and sub.status not in ("canceled", "expired"):
        await subscriptions.cancel(
            session, customer_id, at_period_end=False, catalog=ctx.catalog, clock=ctx.clock
        )
    return before, await subscriptions.get_subscription(session, customer_id)


async def plan_checkout_completed(
    ctx: Context, event: ProviderEvent, checkout_id: str, session_object: Mapping[str, Any]
) -> Synced:
    """A subscription checkout was paid: record the Stripe subscription, a payment method on
    file, and move the customer to the plan (a scheduled cancellation or downgrade is
    undone; a canceled or expired subscription starts again)."""
    subscription_id = str(session_object.get("subscription") or "")
    try:
        async with ctx.db.transaction() as session:
            await mark_processed(session, event, clock=ctx.clock)
            checkout = await session.get(Checkout, checkout_id, with_for_update=True)
            assert checkout is not None
            customer_id, plan = checkout.customer_id, checkout.item
            checkout.status = CheckoutStatus.COMPLETED.value
            checkout.completed_at = ctx.clock.now()
            tracked = await _guard(
                session, event, subscription_id or f"checkout:{checkout_id}",
                customer_id=customer_id, plan=plan, status="active",
            )  # fmt: skip
            await subscriptions.set_payment_method(
                session, customer_id, True, catalog=ctx.catalog, clock=ctx.clock
            )
            sub = await subscriptions.get_subscription(session, customer_id)
            before = sub.status
            if tracked is not None:
                if sub.cancel_at_period_end or sub.scheduled_plan is not None:
                    await subscriptions.resume(session, customer_id, clock=ctx.clock)
                if sub.plan != plan or sub.status in ("canceled", "expired"):
                    await subscriptions.change_plan(
                        session, customer_id, plan, catalog=ctx.catalog, clock=ctx.clock
                    )
                sub = await subscriptions.get_subscription(session, customer_id)
                await _sub_event(
                    ctx, session, before, sub, provider_subscription=subscription_id,
                    provider_status="active", reason="checkout",
                )  # fmt: skip
            return Synced("processed" if tracked else "stale", customer_id)
    except IntegrityError as error:
        raise AlreadyProcessed(event.id) from error


def invoice_subscription(invoice: Mapping[str, Any]) -> str | None:
    """The Stripe subscription an invoice bills: `subscription` (API versions before
    2025-03-31) or `parent.subscription_details.subscription` (later ones)."""
    direct = invoice.get("subscription")
    if isinstance(direct, str) and direct:
        return direct
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    found = details.get("subscription")
    return found if isinstance(found, str) and found else None


async def invoice_settled(
    ctx: Context, event: ProviderEvent, invoice: Mapping[str, Any], *, paid: bool
) -> Synced:
    """`invoice.paid` (or `invoice.payment_failed`): record the subscription payment as
    succeeded (failed) and, unless an applied event is newer, move the subscription to
    `active` (`past_due`)."""
    subscription_id = invoice_subscription(invoice)
    currency = str(invoice.get("currency") or ctx.catalog.currency)
    minor = int((invoice.get("amount_paid") if paid else invoice.get("amount_due")) or 0)
    try:
        async with ctx.db.transaction() as session:
            marked = await mark_processed(session, event, clock=ctx.clock)
            metadata = (invoice.get("parent") or {}).get("subscription_details") or {}
            customer_id = await customer_of(
                session, invoice.get("customer"), metadata.get("metadata") or {}, subscription_id
            )
            if customer_id is None or subscription_id is None:
                marked.outcome = "ignored: not a tollhouse customer's subscription invoice"
                return Synced("ignored")
            row = await record_in_session(
                session,
                Terms(
                    customer_id=customer_id,
                    provider=Provider.STRIPE.value,
                    provider_ref=str(invoice.get("id")),
                    kind=PaymentKind.SUBSCRIPTION,
                    amount_micros=money.from_minor_units(minor, currency),
                    currency=currency,
                    paid_at=ctx.clock.now(),
                    description=f"invoice {invoice.get('number') or invoice.get('id')}",
                ),
                PaymentStatus.SUCCEEDED if paid else PaymentStatus.FAILED,
                clock=ctx.clock,
                reason=None if paid else "the invoice payment failed",
            )
            status = "active" if paid else "past_due"
            tracked = await _guard(
                session, event, subscription_id, customer_id=customer_id, plan=None, status=status
            )
            if tracked is None:
                marked.outcome = "stale: a newer event of the subscription was applied"
                return Synced("stale", None, (row.id,))
            reason = "invoice_paid" if paid else "invoice_payment_failed"
            before, sub = await _follow(
                ctx, session, customer_id, status, plan=tracked.plan, reason=reason
            )
            if sub.status != before:
                await _sub_event(
                    ctx, session, before, sub, provider_subscription=subscription_id,
                    provider_status=status, reason=reason,
                )  # fmt: skip
            return Synced("processed", customer_id, (row.id,))
    except IntegrityError as error:
        raise AlreadyProcessed(event.id) from error


async def subscription_changed(
    ctx: Context, event: ProviderEvent, stripe_sub: Mapping[str, Any], *, deleted: bool
) -> Synced:
    """`customer.subscription.updated` (`.deleted`): unless an applied event is newer,
    follow Stripe's status (deleted = canceled)."""
    subscription_id = str(stripe_sub.get("id") or "")
    status = "canceled" if deleted else str(stripe_sub.get("status") or "")
    metadata = stripe_sub.get("metadata") or {}
    try:
        async with ctx.db.transaction() as session:
            marked = await mark_processed(session, event, clock=ctx.clock)
            customer_id = await customer_of(
                session, stripe_sub.get("customer"), metadata, subscription_id
            )
            if customer_id is None or not subscription_id:
                marked.outcome = "ignored: not a tollhouse customer's subscription"
                return Synced("ignored")
            plan = metadata.get("tollhouse_plan")
            tracked = await _guard(
                session, event, subscription_id, customer_id=customer_id,
                plan=plan if isinstance(plan, str) else None, status=status,
            )  # fmt: skip
            if tracked is None:
                marked.outcome = "stale: a newer event of the subscription was applied"
                return Synced("stale")
            reason = "subscription_deleted" if deleted else "subscription_updated"
            before, sub = await _follow(
                ctx, session, customer_id, status, plan=tracked.plan, reason=reason
            )
            await _sub_event(
                ctx, session, before, sub, provider_subscription=subscription_id,
                provider_status=status, reason=reason,
            )  # fmt: skip
            return Synced("processed", customer_id)
    except IntegrityError as error:
        raise AlreadyProcessed(event.id) from error
