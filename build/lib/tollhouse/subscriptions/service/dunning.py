"""What a payment provider says about a subscription's payments: an invoice failed (the
subscription falls `past_due`), or was paid (back to `active`).

Like the lifecycle functions, these take the caller's `AsyncSession`, lock the subscription
row and never commit or call the ledger: the credits an activation owes go to the
`subscription_grants` outbox (`deliver_grants` after the commit). Stripe's model: a failed
renewal leaves the subscription `past_due` while Stripe retries the invoice; a later paid
invoice makes it `active` again (docs.stripe.com/billing/subscriptions/overview).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog
from tollhouse.catalog import service as catalogs
from tollhouse.clock import Clock
from tollhouse.subscriptions.models import HistoryEvent, Subscription, SubscriptionStatus
from tollhouse.subscriptions.service import _state as state

PAYABLE = frozenset({SubscriptionStatus.ACTIVE.value, SubscriptionStatus.TRIALING.value})
"""Statuses a failed payment moves to `past_due`."""


async def mark_past_due(
    session: AsyncSession, customer_id: str, *, clock: Clock, reason: str
) -> Subscription | None:
    """An invoice of the subscription failed: an `active` or `trialing` subscription becomes
    `past_due` (its plan stays; no included credits are owed until it is paid). Returns the
    subscription when its status changed, None when it was not payable (already past due,
    canceled or expired).

    Raises:
        SubscriptionNotFound: the customer has no subscription.
    """
    sub = await state.load(session, customer_id)
    if sub.status not in PAYABLE:
        return None
    now = clock.now()
    previous = sub.status
    sub.status = SubscriptionStatus.PAST_DUE.value
    sub.updated_at = now
    state.record(
        session, sub, HistoryEvent.PAST_DUE, now, from_plan=sub.plan, to_plan=sub.plan,
        reason=reason, previous_status=previous,
    )  # fmt: skip
    await session.flush()
    return sub


async def mark_paid(
    session: AsyncSession, customer_id: str, *, catalog: Catalog, clock: Clock, reason: str
) -> Subscription | None:
    """An invoice of the subscription was paid: a `past_due` subscription becomes `active`
    and the current period's included credits are owed (once: the outbox key is the
    period's). Returns the subscription when its status changed, else None.

    Raises:
        SubscriptionNotFound: the customer has no subscription.
        NotInCatalogInForce: `catalog` is not the one in force, which lacks the plan or has
            other terms for it.
    """
    sub = await state.load(session, customer_id)
    if sub.status != SubscriptionStatus.PAST_DUE:
        return None
    await catalogs.require_in_force(session, catalog, plans=[sub.plan])
    now = clock.now()
    sub.status = SubscriptionStatus.ACTIVE.value
    sub.updated_at = now
    state.record(session, sub, HistoryEvent.ACTIVATED, now, to_plan=sub.plan, reason=reason)
    await state.owe_included(session, sub, catalog.plan(sub.plan), catalog=catalog, now=now)
    await session.flush()
    return sub
