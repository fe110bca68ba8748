"""Payments reads, and the rule that a paid plan needs a payment method on file."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog
from tollhouse.payments.errors import PaymentMethodRequired, PaymentNotFound
from tollhouse.payments.models import Payment, PaymentKind, PaymentRefund, PaymentStatus
from tollhouse.payments.schemas import PaymentView, RefundView
from tollhouse.payments.service.refunds import DONE, refunds_of
from tollhouse.subscriptions import service as subscriptions

MAX_PAGE = 500
"""Largest `limit` of `list_payments`."""


async def list_payments(
    session: AsyncSession,
    *,
    customer_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before: str | None = None,
) -> list[PaymentView]:
    """Payments newest first (of one customer, or all); page with `before` = the last id
    seen. `limit` is clamped to 1..`MAX_PAGE`."""
    query = select(Payment)
    if customer_id is not None:
        query = query.where(Payment.customer_id == customer_id)
    if status is not None:
        query = query.where(Payment.status == status)
    if before is not None:
        query = query.where(Payment.id < before)
    rows = await session.scalars(
        query.order_by(Payment.id.desc()).limit(max(1, min(limit, MAX_PAGE)))
    )
    return [PaymentView.of(row) for row in rows]


async def get_payment(
    session: AsyncSession, payment_id: str, *, customer_id: str | None = None
) -> PaymentView:
    """One payment with its refund steps; with `customer_id`, only that customer's.

    Raises:
        PaymentNotFound: no such payment (or another customer's).
    """
    row = await session.get(Payment, payment_id, populate_existing=True)
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise PaymentNotFound(f"no payment {payment_id!r}", payment_id=payment_id)
    return PaymentView.of(row, await refunds_of(session, payment_id))


CREDIT_KINDS = (
    PaymentKind.CREDIT_PACK,
    PaymentKind.CREDITS,
    PaymentKind.SESSION_PACK,
    PaymentKind.AUTO_TOP_UP,
)
"""The payments that buy credits (the others pay for a plan)."""


async def credit_payments(
    session: AsyncSession, customer_id: str, *, start: datetime, end: datetime
) -> list[PaymentView]:
    """The customer's succeeded payments that bought credits (`CREDIT_KINDS`), recorded
    (`created_at`) in `[start, end)`, oldest first: what an invoice of that period lists."""
    rows = await session.scalars(
        select(Payment)
        .where(
            Payment.customer_id == customer_id,
            Payment.status == PaymentStatus.SUCCEEDED.value,
            Payment.kind.in_([kind.value for kind in CREDIT_KINDS]),
            Payment.created_at >= start,
            Payment.created_at < end,
        )
        .order_by(Payment.id)
    )
    return [PaymentView.of(row) for row in rows]


async def subscription_payments(session: AsyncSession, *, since: datetime) -> list[PaymentView]:
    """Succeeded provider payments of subscription invoices recorded at or after `since`,
    oldest first."""
    rows = await session.scalars(
        select(Payment)
        .where(
            Payment.kind == PaymentKind.SUBSCRIPTION.value,
            Payment.status == PaymentStatus.SUCCEEDED.value,
            Payment.created_at >= since,
        )
        .order_by(Payment.id)
    )
    return [PaymentView.of(row) for row in rows]


async def completed_refunds(
    session: AsyncSession, *, since: datetime
) -> list[tuple[RefundView, PaymentView]]:
    """Refund steps completed at or after `since`, oldest first, each with its payment."""
    rows = await session.execute(
        select(PaymentRefund, Payment)
        .join(Payment, Payment.id == PaymentRefund.payment_id)
        .where(PaymentRefund.status == DONE, PaymentRefund.completed_at >= since)
        .order_by(PaymentRefund.completed_at, PaymentRefund.id)
    )
    return [(RefundView.of(step), PaymentView.of(payment)) for step, payment in rows]


async def require_payment_method(
    session: AsyncSession, customer_id: str, plan: str, *, catalog: Catalog
) -> None:
    """A customer may choose a paid plan only with a payment method on file: a card saved
    through a Stripe checkout, or a payment method an operator recorded (`manual` billing).

    Raises:
        PlanNotFound: unknown plan.
        SubscriptionNotFound: the customer has no subscription.
        PaymentMethodRequired: a paid plan (price > 0) without a payment method (402).
    """
    if catalog.plan(plan).price_micros <= 0:
        return
    sub = await subscriptions.get_subscription(session, customer_id)
    if sub.has_payment_method:
        return
    raise PaymentMethodRequired(
        f"plan {plan!r} is paid: add a payment method first (POST /v1/checkout with the plan "
        "pays it with Stripe; an operator may record one for manual billing)",
        plan=plan,
    )
