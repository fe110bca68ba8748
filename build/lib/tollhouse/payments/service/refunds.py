"""Refunds: take back the credits a refunded share of a payment bought, as far as the wallet
still holds them.

A refund is a step of the payment's refunded total, `from_micros -> to_micros` (Stripe's
`charge.amount_refunded` is that total, so its events are steps too, whatever their order).
The step's share of the credits, and of the bonus, is

    share(x) = floor(x * to / amount) - floor(x * from / amount)

so successive steps add up to `floor(x * total / amount)`, and a full refund takes all of
`x`, each micro once. Each share is reversed from its lot to the account that funded it
(`Ledger.reverse_grant`: credits to payments, bonus to issuance), never more than the lot
holds: credits already spent, held by an open hold, or expired stay where they went. What
could not be taken back is the step's `unrecovered_micros` (the customer keeps that use; the
wallet never goes below zero for it), in the step and in its `payment.refunded` event.

Writes, in order: (1) one transaction locks the payment row, inserts the step as `pending`
and raises the payment's refunded total (steps are unique per payment and total, so
concurrent refunds line up one after the other); (2) the reversals, keyed by the step; (3)
one transaction marks the step `done` (once: the event is emitted then) with the provider
event's id. A crash leaves a pending step that the next refund or delivery finishes.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.events import service as events
from tollhouse.ids import new_id
from tollhouse.payments.errors import PaymentNotFound, PaymentNotRefundable
from tollhouse.payments.models import Payment, PaymentRefund, PaymentStatus
from tollhouse.payments.schemas import PaymentView, RefundView
from tollhouse.payments.service.inbox import AlreadyProcessed, ProviderEvent, mark_processed
from tollhouse.payments.service.records import Context

PENDING, DONE = "pending", "done"


def share(micros: int, amount: int, before: int, after: int) -> int:
    """The part of `micros` that the refunded total going `before -> after` (of a payment
    of `amount`) takes back: floor(micros * after / amount) - floor(micros * before / amount).
    """
    return micros * after // amount - micros * before // amount


async def refunds_of(session: AsyncSession, payment_id: str) -> tuple[RefundView, ...]:
    """The payment's refund steps, in order."""
    rows = await session.scalars(
        select(PaymentRefund)
        .where(PaymentRefund.payment_id == payment_id)
        .order_by(PaymentRefund.to_micros)
    )
    return tuple(RefundView.of(row) for row in rows)


async def refund(
    ctx: Context,
    payment_id: str,
    *,
    to_micros: int,
    idempotency_key: str,
    event: ProviderEvent | None = None,
) -> PaymentView:
    """Raise the payment's refunded total to `to_micros` (capped at its amount) and take
    back the credits of the new step; a total at or below the current one adds no step
    (an older or repeated refund). `idempotency_key` names the step: the same key again
    answers the payment as it is. With `event`, record it processed with the last write.

    Raises:
        PaymentNotFound: no such payment.
        PaymentNotRefundable: the payment did not succeed.
        AlreadyProcessed: another delivery of `event` recorded it first.
    """
    async with ctx.db.transaction() as session:
        payment = await _locked(session, payment_id)
        if payment.status != PaymentStatus.SUCCEEDED:
            raise PaymentNotRefundable(
                f"payment {payment_id} is {payment.status}: only a succeeded payment is refunded",
                payment_id=payment_id,
                payment_status=payment.status,
                provider=payment.provider,
            )
        known = await session.scalar(
            select(PaymentRefund.id).where(
                PaymentRefund.payment_id == payment_id,
                PaymentRefund.idempotency_key == idempotency_key,
            )
        )
        target = min(to_micros, payment.amount_micros)
        if known is None and target > payment.refunded_micros:
            session.add(
                PaymentRefund(
                    id=new_id("ref"),
                    payment_id=payment_id,
                    customer_id=payment.customer_id,
                    from_micros=payment.refunded_micros,
                    to_micros=target,
                    idempotency_key=idempotency_key,
                    status=PENDING,
                    created_at=ctx.clock.now(),
                )
            )
            payment.refunded_micros = target
            payment.updated_at = ctx.clock.now()
        view = PaymentView.of(payment)
        steps = await refunds_of(session, payment_id)
    pending = [step for step in steps if step.status == PENDING]
    for number, step in enumerate(pending, 1):
        await _reverse(ctx, view, step, event if number == len(pending) else None)
    if event is not None and not pending:
        await _mark(ctx, event)
    async with ctx.db.transaction() as session:
        row = await session.get(Payment, payment_id, populate_existing=True)
        assert row is not None
        return PaymentView.of(row, await refunds_of(session, payment_id))


async def _locked(session: AsyncSession, payment_id: str) -> Payment:
    row = await session.scalar(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise PaymentNotFound(f"no payment {payment_id!r}", payment_id=payment_id)
    return row


async def _reverse(
    ctx: Context, payment: PaymentView, step: RefundView, event: ProviderEvent | None
) -> None:
    """Take back the step's share of the credits and the bonus, then mark it done (once),
    with `event` recorded processed in that transaction."""
    before, after = step.refunded_total_micros - step.amount_micros, step.refunded_total_micros
    requested = reversed_ = 0
    for grant_id, micros in (
        (payment.credits_grant_id, payment.credits_micros),
        (payment.bonus_grant_id, payment.bonus_micros),
    ):
        wanted = share(micros, payment.amount_micros, before, after)
        requested += wanted
        if grant_id is None or wanted <= 0:
            continue
        reversal = await ctx.ledger.reverse_grant(
            grant_id,
            wanted,
            idempotency_key=f"refund:{step.id}",
            customer_id=payment.customer_id,
            description=f"refund {step.id} of payment {payment.id}",
        )
        reversed_ += reversal.reversed_micros
    try:
        async with ctx.db.transaction() as session:
            if event is not None:
                await mark_processed(session, event, clock=ctx.clock)
            await _done(ctx, session, payment, step, requested, reversed_)
    except IntegrityError as error:
        if event is None:
            raise
        raise AlreadyProcessed(event.id) from error


async def _done(
    ctx: Context,
    session: AsyncSession,
    payment: PaymentView,
    step: RefundView,
    requested: int,
    reversed_: int,
) -> None:
    """Mark the step done with what it took back; emit `payment.refunded` if this did it."""
    after = step.refunded_total_micros
    done = await session.execute(
        update(PaymentRefund)
        .where(PaymentRefund.id == step.id, PaymentRefund.status == PENDING)
        .values(
            status=DONE,
            credits_requested_micros=requested,
            credits_reversed_micros=reversed_,
            unrecovered_micros=requested - reversed_,
            completed_at=ctx.clock.now(),
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 0) == 1:
        await events.emit(
            session,
            customer_id=payment.customer_id,
            type="payment.refunded",
            data={
                "payment_id": payment.id,
                "refund_id": step.id,
                "provider": payment.provider,
                "amount_micros": step.amount_micros,
                "refunded_total_micros": after,
                "credits_requested_micros": requested,
                "credits_reversed_micros": reversed_,
                "unrecovered_micros": requested - reversed_,
                "currency": payment.currency,
            },
            clock=ctx.clock,
        )


async def _mark(ctx: Context, event: ProviderEvent) -> None:
    try:
        async with ctx.db.transaction() as session:
            await mark_processed(session, event, clock=ctx.clock)
    except IntegrityError as error:
        raise AlreadyProcessed(event.id) from error
