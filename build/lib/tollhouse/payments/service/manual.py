"""The `manual` provider: an operator records a payment received some other way (a bank
transfer, an invoice paid by cheque), and refunds one.

A manual payment is posted like any other (`records`): a paid grant of the credits, a bonus
grant, keyed by the payment; its `provider_ref` is `<customer>:<operator's key>`, so the same
key again answers the first payment and posts nothing more.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from tollhouse.catalog import service as catalogs
from tollhouse.customers import service as customers
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.payments.errors import PaymentNotFound, PaymentNotRefundable
from tollhouse.payments.models import (
    Payment,
    PaymentKind,
    PaymentRefund,
    PaymentStatus,
    Provider,
)
from tollhouse.payments.schemas import PaymentView
from tollhouse.payments.service import records, refunds
from tollhouse.payments.service.records import Context, Terms


async def record_manual(
    ctx: Context,
    *,
    customer_id: str,
    idempotency_key: str,
    pack: str | None = None,
    amount_micros: int | None = None,
    description: str = "",
) -> PaymentView:
    """Record a payment of the credit pack `pack` (its credits and bonus), or of
    `amount_micros` (that many credits, no bonus), and post it. Answers after the payment
    is `succeeded` and its `payment.succeeded` event written.

    Raises:
        InvalidInput: neither or both of `pack` and `amount_micros`; a bad key.
        CustomerNotFound: no such customer.
        CreditPackNotFound: unknown pack.
        NotInCatalogInForce: this process's currency is not the served catalog's.
        IdempotencyKeyReused: the key recorded another payment (`fields` names what differs).
    """
    if (pack is None) == (amount_micros is None):
        msg = "give exactly one of pack and amount_micros"
        raise InvalidInput(msg, errors=[{"loc": "pack", "msg": msg}])
    if not 0 < len(idempotency_key) <= 128:
        msg = "must be 1 to 128 characters"
        raise InvalidInput(msg, errors=[{"loc": "idempotency_key", "msg": msg}])
    async with ctx.db.transaction() as session:
        await customers.get(session, customer_id)
        await catalogs.require_in_force(session, ctx.catalog, currency=True)
    now = ctx.clock.now()
    if pack is not None:
        sold = ctx.catalog.credit_pack(pack)
        terms = Terms(
            customer_id=customer_id,
            provider=Provider.MANUAL.value,
            provider_ref=f"{customer_id}:{idempotency_key}",
            kind=PaymentKind.CREDIT_PACK,
            amount_micros=sold.price_micros,
            currency=ctx.catalog.currency,
            paid_at=now,
            item=sold.name,
            credits_micros=sold.credits_micros,
            bonus_micros=sold.bonus_micros,
            bonus_expiry_days=sold.bonus_expiry_days,
            description=description,
        )
    else:
        assert amount_micros is not None
        terms = Terms(
            customer_id=customer_id,
            provider=Provider.MANUAL.value,
            provider_ref=f"{customer_id}:{idempotency_key}",
            kind=PaymentKind.CREDITS,
            amount_micros=amount_micros,
            currency=ctx.catalog.currency,
            paid_at=now,
            credits_micros=amount_micros,
            description=description,
        )
    payment, created = await records.open_payment(ctx, terms)
    if not created:
        _same(payment, terms, idempotency_key)
    if payment.status == PaymentStatus.SUCCEEDED:
        return replace(payment, replayed=True)
    posted = await records.post_credits(ctx, payment)
    done = await records.complete(ctx, payment.id, posted)
    return replace(done, replayed=not created)


def _same(payment: PaymentView, terms: Terms, key: str) -> None:
    differ = [
        name
        for name, first, again in (
            ("kind", payment.kind, terms.kind.value),
            ("pack", payment.item, terms.item),
            ("amount_micros", payment.amount_micros, terms.amount_micros),
            ("description", payment.description, terms.description[:500]),
        )
        if first != again
    ]
    if differ:
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} recorded another payment",
            fields=differ,
            payment_id=payment.id,
        )


async def refund_manual(
    ctx: Context, payment_id: str, *, amount_micros: int | None, idempotency_key: str
) -> PaymentView:
    """Refund `amount_micros` (default: all that is not refunded yet) of a manual payment and
    take back its share of the credits (`refunds`).

    Raises:
        PaymentNotFound: no such payment.
        PaymentNotRefundable: a Stripe payment (refund it in Stripe), not succeeded, or
            already fully refunded.
        InvalidInput: an amount <= 0.
    """
    async with ctx.db.transaction() as session:
        row = await session.scalar(select(Payment).where(Payment.id == payment_id))
        if row is None:
            raise PaymentNotFound(f"no payment {payment_id!r}", payment_id=payment_id)
        payment = PaymentView.of(row)
        known = await session.scalar(
            select(PaymentRefund.id).where(
                PaymentRefund.payment_id == payment_id,
                PaymentRefund.idempotency_key == idempotency_key,
            )
        )
    extra = {"payment_id": payment_id, "payment_status": payment.status}
    if payment.provider != Provider.MANUAL:
        raise PaymentNotRefundable(
            "refund a Stripe payment in Stripe: its charge.refunded event takes the credits back",
            provider=payment.provider,
            **extra,
        )
    if amount_micros is not None and amount_micros <= 0:
        msg = "must be positive"
        raise InvalidInput(msg, errors=[{"loc": "amount_micros", "msg": msg}])
    rest = payment.amount_micros - payment.refunded_micros
    if rest <= 0 and known is None:
        raise PaymentNotRefundable(
            f"payment {payment_id} is fully refunded", provider=payment.provider, **extra
        )
    target = payment.refunded_micros + (rest if amount_micros is None else amount_micros)
    return await refunds.refund(ctx, payment_id, to_micros=target, idempotency_key=idempotency_key)
