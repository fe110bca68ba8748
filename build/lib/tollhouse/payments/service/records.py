"""A payment's life: opened once per provider reference, its credits posted to the ledger,
then completed (or failed), with its event in the outbox.

Order of the writes (the ledger writer commits on its own connection, so no transaction
spans it; `sessions.service.starts` orders a session's fee the same way):

1. `open_payment`: one transaction inserts the `payments` row, unique per provider and
   `provider_ref`; every later delivery of the same payment finds that row and its id.
2. `post_credits`: the ledger grants, keyed by the payment's id (`payment:<id>:credits`,
   `payment:<id>:bonus`), so a retry answers the first grants and adds nothing; a session
   pack is then bought from the wallet with a key from the payment's id too.
3. `complete` / `fail`: one transaction inserts the provider event's id (when there is one),
   moves the payment to `succeeded` (or `failed`) only from another status, and emits
   `payment.succeeded` (`payment.failed`) when it moved. A crash before it leaves a pending
   payment whose next delivery redoes 2 (idempotent) and 3.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog, CatalogError
from tollhouse.clock import Clock
from tollhouse.errors import InvalidInput
from tollhouse.events import service as events
from tollhouse.ids import new_id
from tollhouse.ledger import InsufficientCredit, Ledger
from tollhouse.payments.models import Payment, PaymentKind, PaymentStatus
from tollhouse.payments.schemas import PaymentView
from tollhouse.payments.service.inbox import AlreadyProcessed, ProviderEvent, mark_processed
from tollhouse.sessions import service as sessions
from tollhouse.storage import Database

PURCHASED_PRIORITY = 100
"""Grant priority of paid credits: among lots without expiry, lower priority is spent first,
so what a customer paid for is spent after credits given for free."""


@dataclass(frozen=True, slots=True)
class Context:
    """What the payments services run on."""

    db: Database
    ledger: Ledger
    catalog: Catalog
    clock: Clock


@dataclass(frozen=True, slots=True)
class Terms:
    """What a payment is for, as it is opened. Money in micros of `currency`."""

    customer_id: str
    provider: str
    provider_ref: str
    kind: PaymentKind
    amount_micros: int
    currency: str
    paid_at: datetime
    item: str = ""
    sessions: int | None = None
    credits_micros: int = 0
    bonus_micros: int = 0
    bonus_expiry_days: int | None = None
    checkout_id: str | None = None
    payment_intent_id: str | None = None
    description: str = ""
    status: PaymentStatus = PaymentStatus.PENDING


async def by_ref(session: AsyncSession, provider: str, provider_ref: str) -> Payment | None:
    """The payment of that provider reference, if any."""
    return await session.scalar(
        select(Payment).where(Payment.provider == provider, Payment.provider_ref == provider_ref)
    )


async def open_payment(ctx: Context, terms: Terms) -> tuple[PaymentView, bool]:
    """The payment of `terms.provider_ref`, inserted as `terms.status` (default pending)
    unless it exists. Returns it and whether this call inserted it."""
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        existing = await by_ref(session, terms.provider, terms.provider_ref)
        if existing is not None:
            return PaymentView.of(existing), False
        expires = None
        if terms.bonus_micros and terms.bonus_expiry_days is not None:
            expires = terms.paid_at + timedelta(days=terms.bonus_expiry_days)
        row = Payment(
            id=new_id("pay"),
            customer_id=terms.customer_id,
            provider=terms.provider,
            provider_ref=terms.provider_ref,
            kind=terms.kind.value,
            item=terms.item,
            sessions=terms.sessions,
            amount_micros=terms.amount_micros,
            currency=terms.currency,
            credits_micros=terms.credits_micros,
            bonus_micros=terms.bonus_micros,
            bonus_expires_at=expires,
            status=terms.status.value,
            paid_at=terms.paid_at,
            checkout_id=terms.checkout_id,
            payment_intent_id=terms.payment_intent_id,
            refunded_micros=0,
            description=terms.description[:500],
            created_at=now,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            raced = await by_ref(session, terms.provider, terms.provider_ref)
            if raced is None:
                raise
            return PaymentView.of(raced), False
        return PaymentView.of(row), True


@dataclass(frozen=True, slots=True)
class Posted:
    """The ledger side of a payment."""

    credits_grant_id: str | None = None
    bonus_grant_id: str | None = None
    note: str | None = None
    """Why part of it could not be done (a session pack not bought: the credits stay)."""


async def post_credits(ctx: Context, payment: PaymentView) -> Posted:
    """Post the payment's credits (a paid grant) and bonus (a promotional grant expiring at
    `bonus_expires_at`), keyed by the payment's id; buy the session pack it paid for from
    them. Idempotent. A bonus already past its expiry is not granted (it could never be
    spent).

    Raises:
        LedgerError: the ledger refused (never for a valid payment).
    """
    ledger, clock = ctx.ledger, ctx.clock
    credits = bonus = None
    if payment.credits_micros:
        credits = await ledger.grant(
            payment.customer_id,
            payment.credits_micros,
            idempotency_key=f"payment:{payment.id}:credits",
            source="purchased",
            priority=PURCHASED_PRIORITY,
            description=_describe(payment),
            currency=payment.currency,
            paid=True,
        )
    expires = payment.bonus_expires_at
    if payment.bonus_micros and (expires is None or expires > clock.now()):
        bonus = await ledger.grant(
            payment.customer_id,
            payment.bonus_micros,
            idempotency_key=f"payment:{payment.id}:bonus",
            source="promotional",
            expires_at=expires,
            description=f"bonus of {_describe(payment)}",
            currency=payment.currency,
        )
    posted = Posted(credits.id if credits else None, bonus.id if bonus else None)
    if payment.kind == PaymentKind.SESSION_PACK:
        posted = replace(posted, note=await _buy_session_pack(ctx, payment))
    return posted


async def _buy_session_pack(ctx: Context, payment: PaymentView) -> str | None:
    """Spend the payment's credits on the session pack; None when bought, else why not."""
    try:
        await sessions.buy_pack(
            ctx.db,
            ctx.ledger,
            catalog=ctx.catalog,
            clock=ctx.clock,
            customer_id=payment.customer_id,
            product=payment.item,
            sessions=payment.sessions or 0,
            idempotency_key=f"payment-{payment.id}",
        )
    except (InsufficientCredit, CatalogError, InvalidInput) as error:
        return f"the session pack was not bought ({error.code}): the credits stay in the wallet"
    return None


def _describe(payment: PaymentView) -> str:
    what = payment.item or "credits"
    return f"payment {payment.id} ({payment.provider}): {payment.kind} {what}"


def event_data(row: Payment | PaymentView) -> dict[str, Any]:
    """The `data` of a `payment.*` event."""
    return {
        "payment_id": row.id,
        "provider": row.provider,
        "kind": row.kind,
        "item": row.item,
        "amount_micros": row.amount_micros,
        "currency": row.currency,
        "credits_micros": row.credits_micros,
        "bonus_micros": row.bonus_micros,
    }


async def complete(
    ctx: Context, payment_id: str, posted: Posted, event: ProviderEvent | None = None
) -> PaymentView:
    """Mark the payment succeeded with its grants and emit `payment.succeeded`, once; with
    `event`, record it processed in the same transaction.

    Raises:
        AlreadyProcessed: another delivery of `event` recorded it first (nothing written).
    """
    return await _settle(ctx, payment_id, PaymentStatus.SUCCEEDED, event, posted=posted)


async def fail(
    ctx: Context, payment_id: str, reason: str, event: ProviderEvent | None = None
) -> PaymentView:
    """Mark a pending payment failed and emit `payment.failed`, once; with `event`, record it
    processed in the same transaction.

    Raises:
        AlreadyProcessed: another delivery of `event` recorded it first (nothing written).
    """
    return await _settle(ctx, payment_id, PaymentStatus.FAILED, event, reason=reason)


async def _settle(
    ctx: Context,
    payment_id: str,
    status: PaymentStatus,
    event: ProviderEvent | None,
    *,
    posted: Posted | None = None,
    reason: str | None = None,
) -> PaymentView:
    try:
        async with ctx.db.transaction() as session:
            if event is not None:
                await mark_processed(session, event, clock=ctx.clock)
            row = await move(
                session, payment_id, status, clock=ctx.clock, posted=posted, reason=reason
            )
            return PaymentView.of(row)
    except IntegrityError as error:
        if event is None:
            raise
        raise AlreadyProcessed(event.id) from error


async def move(
    session: AsyncSession,
    payment_id: str,
    status: PaymentStatus,
    *,
    clock: Clock,
    posted: Posted | None = None,
    reason: str | None = None,
) -> Payment:
    """In the caller's transaction: move the payment to `status` (a failure only from
    `pending`, a success from `pending` or `failed`: a retried invoice) and emit
    `payment.<status>` when it moved. Returns the row as it is now."""
    values: dict[str, Any] = {"status": status.value, "updated_at": clock.now()}
    if posted is not None:
        values.update(
            credits_grant_id=posted.credits_grant_id,
            bonus_grant_id=posted.bonus_grant_id,
            failure_reason=posted.note,
        )
    else:
        values["failure_reason"] = (reason or "")[:500] or None
    movable = [PaymentStatus.PENDING.value]
    if status == PaymentStatus.SUCCEEDED:
        movable.append(PaymentStatus.FAILED.value)
    moved = await session.execute(
        update(Payment)
        .where(Payment.id == payment_id, Payment.status.in_(movable))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    row = await session.get(Payment, payment_id, populate_existing=True)
    assert row is not None
    if getattr(moved, "rowcount", 0) == 1:
        data = event_data(row)
        if status == PaymentStatus.FAILED:
            data["reason"] = row.failure_reason
        await events.emit(
            session,
            customer_id=row.customer_id,
            type=f"payment.{status.value}",
            data=data,
            clock=clock,
        )
    return row


async def record_in_session(
    session: AsyncSession,
    terms: Terms,
    status: PaymentStatus,
    *,
    clock: Clock,
    reason: str | None = None,
) -> Payment:
    """In the caller's transaction: the payment of `terms.provider_ref` (inserted pending if
    new), moved to `status` as `move` does. For payments that post nothing to the ledger
    (a subscription's invoice)."""
    row = await by_ref(session, terms.provider, terms.provider_ref)
    if row is None:
        now = clock.now()
        row = Payment(
            id=new_id("pay"),
            customer_id=terms.customer_id,
            provider=terms.provider,
            provider_ref=terms.provider_ref,
            kind=terms.kind.value,
            item=terms.item,
            amount_micros=terms.amount_micros,
            currency=terms.currency,
            credits_micros=0,
            bonus_micros=0,
            status=PaymentStatus.PENDING.value,
            paid_at=terms.paid_at,
            payment_intent_id=terms.payment_intent_id,
            refunded_micros=0,
            description=terms.description[:500],
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
    return await move(session, row.id, status, clock=clock, reason=reason)
