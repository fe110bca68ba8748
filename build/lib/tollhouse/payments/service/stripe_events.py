"""Stripe webhook events, each processed once: what each type does.

| event | effect |
| --- | --- |
| `checkout.session.completed`, `.async_payment_succeeded` | a paid pack checkout: the payment (keyed by the session id) posts its credits and bonus, or buys its session pack; a card saved with it is a payment method on file. A plan checkout subscribes the customer to the plan. |
| `checkout.session.async_payment_failed` | the pending payment fails (`payment.failed`) |
| `checkout.session.expired` | the checkout is `expired` |
| `payment_intent.succeeded`, `.payment_failed` | an auto top-up's payment (named in its metadata) posts, or fails |
| `invoice.paid`, `invoice.payment_failed` | a subscription payment; the subscription `active` / `past_due` |
| `customer.subscription.updated`, `.deleted` | the subscription follows Stripe's status (older events ignored) |
| `charge.refunded` | the refunded share of the payment's credits taken back (`refunds`) |

Any other type, or an object tollhouse did not make, is recorded as `ignored`. A domain
refusal while applying an event (an unknown plan, a plan change the subscription's state
forbids) is recorded as `ignored: <code>` and logged: Stripe would otherwise retry it for
days to the same answer. Anything else raises, nothing is recorded, and Stripe retries.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from tollhouse import money
from tollhouse.errors import TollhouseError
from tollhouse.payments.models import Checkout, CheckoutStatus, Payment, PaymentKind, Provider
from tollhouse.payments.schemas import Outcome, PaymentView, WebhookOutcome
from tollhouse.payments.service import checkout as checkouts
from tollhouse.payments.service import records, refunds
from tollhouse.payments.service.inbox import (
    AlreadyProcessed,
    ProviderEvent,
    is_processed,
    mark_processed,
)
from tollhouse.payments.service.records import Context, Terms
from tollhouse.payments.service.subscription_sync import (
    Synced,
    invoice_settled,
    plan_checkout_completed,
    subscription_changed,
)
from tollhouse.subscriptions import service as subscriptions

if TYPE_CHECKING:
    import stripe

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Tries of one delivery that lost a race on a unique key to a different event."""

Object = Mapping[str, Any]
Handler = Callable[[Context, ProviderEvent, Object], Awaitable[Synced]]


async def handle(ctx: Context, event: stripe.Event) -> tuple[WebhookOutcome, Synced]:
    """Apply a verified Stripe event once. Returns the outcome, and what changed (a
    customer whose plan or status moved: the caller delivers owed credits and drops caches).
    """
    mark = ProviderEvent(Provider.STRIPE.value, str(event.id), str(event.type), int(event.created))
    obj: Object = event.data.object.to_dict()
    handler = HANDLERS.get(mark.type)
    for _ in range(ATTEMPTS):
        async with ctx.db.transaction() as session:
            if await is_processed(session, mark):
                return _outcome(mark, Synced("duplicate")), Synced("duplicate")
        try:
            if handler is None:
                synced = await _ignore(ctx, mark, "ignored: tollhouse does not act on this type")
            else:
                synced = await handler(ctx, mark, obj)
        except AlreadyProcessed:
            continue  # another delivery recorded it, or a different event won a unique key
        except TollhouseError as refused:
            log.warning("Stripe event %s (%s) refused: %s", mark.id, mark.type, refused.detail)
            try:
                synced = await _ignore(ctx, mark, f"ignored: {refused.code}: {refused.detail}")
            except AlreadyProcessed:
                continue
        return _outcome(mark, synced), synced
    async with ctx.db.transaction() as session:
        if await is_processed(session, mark):
            return _outcome(mark, Synced("duplicate")), Synced("duplicate")
    raise RuntimeError(f"Stripe event {mark.id} lost {ATTEMPTS} races in a row")


def _outcome(mark: ProviderEvent, synced: Synced) -> WebhookOutcome:
    """`synced.outcome` is `<outcome>` or `<outcome>: <why>`."""
    kind, _, detail = synced.outcome.partition(": ")
    assert kind in ("processed", "duplicate", "ignored", "stale"), kind
    return WebhookOutcome(mark.id, mark.type, cast(Outcome, kind), detail, list(synced.payment_ids))


async def _ignore(ctx: Context, mark: ProviderEvent, why: str) -> Synced:
    try:
        async with ctx.db.transaction() as session:
            await mark_processed(session, mark, clock=ctx.clock, outcome=why)
    except IntegrityError as error:
        raise AlreadyProcessed(mark.id) from error
    return Synced(why)


async def _checkout_paid(ctx: Context, mark: ProviderEvent, obj: Object) -> Synced:
    async with ctx.db.transaction() as session:
        checkout = await checkouts.by_session_id(session, str(obj.get("id")))
    if checkout is None:
        return await _ignore(ctx, mark, "ignored: a checkout tollhouse did not open")
    if checkout.mode == "subscription":
        return await plan_checkout_completed(ctx, mark, checkout.id, obj)
    if obj.get("payment_status") not in ("paid", "no_payment_required"):
        return await _ignore(ctx, mark, "ignored: not paid yet (an async_payment event follows)")
    payment, _ = await records.open_payment(ctx, _checkout_terms(ctx, checkout, obj, mark))
    await _checkout_done(ctx, checkout)
    posted = await records.post_credits(ctx, payment)
    done = await records.complete(ctx, payment.id, posted, mark)
    return Synced("processed", checkout.customer_id, (done.id,))


async def _checkout_done(ctx: Context, checkout: Checkout) -> None:
    """Mark the checkout completed, its card a payment method on file, and move the customer
    to a one-off plan it paid for (idempotent, redone by a redelivery). A refusal here (the
    served catalog lacks the plan) is logged: the payment is posted all the same."""
    try:
        async with ctx.db.transaction() as session:
            await session.execute(
                update(Checkout)
                .where(Checkout.id == checkout.id)
                .values(status=CheckoutStatus.COMPLETED.value, completed_at=ctx.clock.now())
            )
            await subscriptions.set_payment_method(
                session, checkout.customer_id, True, catalog=ctx.catalog, clock=ctx.clock
            )
            if checkout.kind == PaymentKind.PLAN:
                sub = await subscriptions.get_subscription(session, checkout.customer_id)
                if sub.plan != checkout.item:
                    await subscriptions.change_plan(
                        session, checkout.customer_id, checkout.item, catalog=ctx.catalog,
                        clock=ctx.clock,
                    )  # fmt: skip
    except TollhouseError as refused:
        log.error("checkout %s paid, but: %s", checkout.id, refused.detail)


def _checkout_terms(ctx: Context, checkout: Checkout, obj: Object, mark: ProviderEvent) -> Terms:
    """What a completed pack (or one-off plan) checkout was paid for: the terms it sold."""
    total = obj.get("amount_total")
    paid = (
        money.from_minor_units(int(total), checkout.currency)
        if isinstance(total, int)
        else checkout.price_micros
    )
    intent = obj.get("payment_intent")
    return Terms(
        customer_id=checkout.customer_id,
        provider=Provider.STRIPE.value,
        provider_ref=str(obj.get("id")),
        kind=PaymentKind(checkout.kind),
        amount_micros=paid,
        currency=checkout.currency,
        paid_at=datetime.fromtimestamp(mark.created, UTC),
        item=checkout.item,
        sessions=checkout.sessions,
        credits_micros=checkout.credits_micros,
        bonus_micros=checkout.bonus_micros,
        bonus_expiry_days=checkout.bonus_expiry_days,
        checkout_id=checkout.id,
        payment_intent_id=intent if isinstance(intent, str) else None,
        description=f"checkout {checkout.id}",
    )


async def _checkout_failed(ctx: Context, mark: ProviderEvent, obj: Object) -> Synced:
    async with ctx.db.transaction() as session:
        checkout = await checkouts.by_session_id(session, str(obj.get("id")))
    if checkout is None:
        return await _ignore(ctx, mark, "ignored: a checkout tollhouse did not open")
    payment, _ = await records.open_payment(ctx, _checkout_terms(ctx, checkout, obj, mark))
    failed = await records.fail(ctx, payment.id, "the delayed payment failed", mark)
    return Synced("processed", None, (failed.id,))


async def _checkout_expired(ctx: Context, mark: ProviderEvent, obj: Object) -> Synced:
    try:
        async with ctx.db.transaction() as session:
            marked = await mark_processed(session, mark, clock=ctx.clock)
            moved = await session.execute(
                update(Checkout)
                .where(
                    Checkout.provider_session_id == str(obj.get("id")),
                    Checkout.status == CheckoutStatus.OPEN.value,
                )
                .values(status=CheckoutStatus.EXPIRED.value)
            )
            if not getattr(moved, "rowcount", 0):
                marked.outcome = "ignored: no open checkout of that session"
                return Synced(marked.outcome)
    except IntegrityError as error:
        raise AlreadyProcessed(mark.id) from error
    return Synced("processed")


async def _intent(ctx: Context, mark: ProviderEvent, obj: Object, *, paid: bool) -> Synced:
    """An auto top-up's PaymentIntent settled (its metadata names the payment)."""
    payment_id = (obj.get("metadata") or {}).get("tollhouse_payment")
    async with ctx.db.transaction() as session:
        row = await session.get(Payment, payment_id) if isinstance(payment_id, str) else None
        payment = None if row is None else PaymentView.of(row)
    if payment is None:
        return await _ignore(ctx, mark, "ignored: not an auto top-up's payment")
    if not paid:
        error = obj.get("last_payment_error") or {}
        reason = str(error.get("message") or "the payment failed")
        failed = await records.fail(ctx, payment.id, reason, mark)
        return Synced("processed", None, (failed.id,))
    posted = await records.post_credits(ctx, payment)
    done = await records.complete(ctx, payment.id, posted, mark)
    return Synced("processed", payment.customer_id, (done.id,))


async def _intent_succeeded(ctx: Context, mark: ProviderEvent, obj: Object) -> Synced:
    return await _intent(ctx, mark, obj, paid=True)


async def _intent_failed(ctx: Context, mark: ProviderEvent, obj: Object) -> Synced:
    return await _intent(ctx, mark, obj, paid=False)


async def _refunded(ctx: Context, mark: ProviderEvent, charge: Object) -> Synced:
    """`charge.refunded`: the charge's `amount_refunded` is the payment's refunded total."""
    intent = charge.get("payment_intent")
    payment = None
    if isinstance(intent, str):
        async with ctx.db.transaction() as session:
            payment = await session.scalar(
                select(Payment.id).where(
                    Payment.provider == Provider.STRIPE.value, Payment.payment_intent_id == intent
                )
            )
    if payment is None:
        return await _ignore(ctx, mark, "ignored: no tollhouse payment of that charge")
    currency = str(charge.get("currency") or ctx.catalog.currency)
    total = money.from_minor_units(int(charge.get("amount_refunded") or 0), currency)
    done = await refunds.refund(
        ctx, payment, to_micros=total, idempotency_key=f"stripe:{total}", event=mark
    )
    return Synced("processed", None, (done.id,))


async def _invoice_paid(ctx: Context, mark: ProviderEvent, obj: Object) -> Synced:
    return await invoice_settled(ctx, mark, obj, paid=True)


async def _invoice_failed(ctx: Context, mark: ProviderEvent, obj: Object) -> Synced:
    return await invoice_settled(ctx, mark, obj, paid=False)


async def _subscription_updated(ctx: Context, mark: ProviderEvent, obj: Object) -> Synced:
    return await subscription_changed(ctx, mark, obj, deleted=False)


async def _subscription_deleted(ctx: Context, mark: ProviderEvent, obj: Object) -> Synced:
    return await subscription_changed(ctx, mark, obj, deleted=True)


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
    "checkout.session.async_payment_failed": _checkout_failed,
    "checkout.session.expired": _checkout_expired,
    "payment_intent.succeeded": _intent_succeeded,
    "payment_intent.payment_failed": _intent_failed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "customer.subscription.updated": _subscription_updated,
    "customer.subscription.deleted": _subscription_deleted,
    "charge.refunded": _refunded,
}
"""The event types tollhouse acts on."""
