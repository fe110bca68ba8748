"""The period rollover job and the grant outbox's delivery to the ledger.

`roll_over` is idempotent and catches up: every subscription whose period ended is rolled
boundary by boundary until its period contains `now`, each boundary in its own transaction
that locks the row (`FOR UPDATE` on PostgreSQL) and writes it with `WHERE version = :seen`
(SQLAlchemy's version counter). A second process rolling the same subscription waits for the
lock, then sees the advanced period and stops, so a boundary is rolled once.

Crash safety: what a boundary owes (fee line, included and rollover credits) is written in the
same transaction that advances the period, to tables with unique idempotency keys; credits go
to the `subscription_grants` outbox. `deliver_grants` then calls `Ledger.grant` with the
row's key (`included:<sub>:<period_start ISO>`, `rollover:...`, `upgrade:...`) and marks the
row. A crash before the commit rolls nothing back into existence; a crash after it leaves
pending rows that the next run delivers; a crash between the ledger's commit and the marking
re-grants with the same key, which the ledger answers with the first grant. So a grant is
never doubled and never skipped. Credits of a period that is already over when delivered
(a server down for whole periods) are marked `skipped`: they could never be spent, and the
ledger refuses grants that expire in the past.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from tollhouse.catalog import Catalog
from tollhouse.clock import Clock
from tollhouse.errors import InvalidInput
from tollhouse.ledger import Ledger, LedgerError
from tollhouse.ledger import service as ledger_service
from tollhouse.storage import Database
from tollhouse.subscriptions.models import (
    GrantKind,
    HistoryEvent,
    Subscription,
    SubscriptionGrant,
    SubscriptionHistory,
    SubscriptionStatus,
)
from tollhouse.subscriptions.periods import zone
from tollhouse.subscriptions.service import _state as state

logger = logging.getLogger(__name__)

_TRANSACTIONS_PAGE = 500


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one `deliver_grants` run did."""

    granted: int = 0
    """Rows granted by the ledger (or confirmed already granted)."""
    skipped: int = 0
    """Rows whose credits had expired before delivery."""
    failed: int = 0
    """Rows the ledger refused; left pending for the next run (logged)."""


@dataclass(frozen=True, slots=True)
class RolloverReport:
    """What one `roll_over` run did."""

    subscriptions: int = 0
    """Subscriptions with at least one boundary rolled by this run."""
    periods_rolled: int = 0
    """Boundaries rolled by this run (a subscription three periods behind counts 3)."""
    grants: DeliveryReport = DeliveryReport()
    """Outbox delivery, both passes added up."""
    changed_customers: tuple[str, ...] = ()
    """Customers whose plan or status changed at a boundary (their customer row's plan
    mirror was rewritten): callers drop their cached views (`Runtime.invalidate_customer`)."""


async def roll_over(
    db: Database,
    *,
    catalog: Catalog,
    clock: Clock,
    ledger: Ledger,
    now: datetime | None = None,
) -> RolloverReport:
    """Roll every subscription whose `current_period_end <= now` (default: the clock) up to
    the period containing `now`, then deliver owed credits. Safe to run concurrently and
    repeatedly. Manages its own short transactions (never pass it a session).

    At each boundary, in this order: a scheduled cancellation (status `canceled`, plan ->
    default plan) or downgrade (plan -> scheduled plan) applies; a trial ends (`active` when
    the plan is free or a payment method is on file, else `past_due`); a past-due period
    that ended unpaid expires (status `expired`, plan -> default plan); the next period
    begins with its fee line (paid recurring plans, also when past due: it is owed) and,
    unless past due, its included credits, preceded by the carried-over rest of the previous
    period's credits when the ending period's plan has a rollover policy (min(unused, cap)).

    Returns counts; owed credits are delivered before and after rolling (`deliver_grants`).
    """
    at = now or clock.now()
    first = await deliver_grants(db, ledger=ledger, clock=clock, now=at)
    async with db.sessions() as session:
        ids = list(
            await session.scalars(
                select(Subscription.customer_id)
                .where(Subscription.current_period_end <= at)
                .order_by(Subscription.current_period_end)
            )
        )
    touched = rolled = 0
    changed: list[str] = []
    for customer_id in ids:
        count, moved = await _roll_subscription(
            db, customer_id, catalog=catalog, clock=clock, now=at
        )
        rolled += count
        touched += 1 if count else 0
        if moved:
            changed.append(customer_id)
    second = await deliver_grants(db, ledger=ledger, clock=clock, now=at)
    return RolloverReport(
        subscriptions=touched,
        periods_rolled=rolled,
        grants=DeliveryReport(
            granted=first.granted + second.granted,
            skipped=first.skipped + second.skipped,
            failed=first.failed + second.failed,
        ),
        changed_customers=tuple(changed),
    )


async def _roll_subscription(
    db: Database, customer_id: str, *, catalog: Catalog, clock: Clock, now: datetime
) -> tuple[int, bool]:
    """Boundaries rolled, and whether the plan or status changed at any of them."""
    rolled = 0
    attempts = 0
    changed = False
    while rolled < state.MAX_ROLLS_PER_RUN:
        try:
            async with db.transaction() as session:
                sub = await state.load(session, customer_id)
                if sub.current_period_end > now:
                    return rolled, changed
                moved = await _roll_once(session, sub, catalog=catalog, clock=clock)
            rolled += 1
            changed = changed or moved
        except StaleDataError:
            attempts += 1  # another process moved it between our read and write: re-read
            if attempts > 5:
                raise
    logger.warning("subscription of %s is more than %d periods behind", customer_id, rolled)
    return rolled, changed


async def _roll_once(
    session: AsyncSession, sub: Subscription, *, catalog: Catalog, clock: Clock
) -> bool:
    """Advance `sub` over its `current_period_end` (the boundary). True when its plan or
    status changed."""
    boundary = sub.current_period_end
    now = clock.now()
    ending = catalog.plan(sub.plan)
    old_status = sub.status
    old_start = sub.current_period_start
    carry = 0
    if ending.rollover is not None and sub.status != SubscriptionStatus.PAST_DUE:
        unused = await _unused_included(session, sub, old_start, boundary)
        carry = ending.rollover.carried(unused)

    default = catalog.default_plan
    if sub.cancel_at_period_end:
        state.record(session, sub, HistoryEvent.CANCELED, boundary, from_plan=sub.plan,
                     to_plan=default, scheduled=True)  # fmt: skip
        sub.plan = default
        sub.status = SubscriptionStatus.CANCELED.value
        sub.cancel_at_period_end = False
        sub.ended_at = boundary
    elif sub.scheduled_plan is not None:
        state.record(session, sub, HistoryEvent.DOWNGRADED, boundary, from_plan=sub.plan,
                     to_plan=sub.scheduled_plan)  # fmt: skip
        sub.plan = sub.scheduled_plan
    sub.scheduled_plan = None
    plan = catalog.plan(sub.plan)

    if sub.status == SubscriptionStatus.TRIALING:
        paid = plan.price_micros == 0 or sub.has_payment_method
        state.record(session, sub, HistoryEvent.TRIAL_ENDED, boundary, to_plan=sub.plan)
        sub.status = (SubscriptionStatus.ACTIVE if paid else SubscriptionStatus.PAST_DUE).value
        event = HistoryEvent.ACTIVATED if paid else HistoryEvent.PAST_DUE
        state.record(session, sub, event, boundary, to_plan=sub.plan, reason="trial_ended")
        # Stripe resets the billing cycle anchor to the trial end.
        sub.billing_anchor_day = boundary.astimezone(zone(sub.timezone)).day
    elif sub.status == SubscriptionStatus.PAST_DUE:
        if sub.has_payment_method or plan.price_micros == 0:
            sub.status = SubscriptionStatus.ACTIVE.value
            state.record(session, sub, HistoryEvent.ACTIVATED, boundary, to_plan=sub.plan)
        else:
            state.record(session, sub, HistoryEvent.EXPIRED, boundary, from_plan=sub.plan,
                         to_plan=default, reason="unpaid")  # fmt: skip
            sub.status = SubscriptionStatus.EXPIRED.value
            sub.plan = default
            sub.ended_at = boundary
            plan = catalog.plan(default)

    new_start, new_end = state.following_period(sub, plan)
    sub.current_period_start, sub.current_period_end = new_start, new_end
    sub.updated_at = now
    await session.flush()  # the conditional UPDATE first: a lost race fails before any insert

    if carry and sub.status != SubscriptionStatus.PAST_DUE and plan.is_recurring:
        await state.owe(
            session, sub, kind=GrantKind.ROLLOVER, amount_micros=carry, plan=ending.name,
            period_start=new_start, expires_at=new_end,
            key=f"rollover:{sub.id}:{new_start.isoformat()}",
            description=f"{ending.name}: unused included credits carried over",
            currency=catalog.currency, now=now,
        )  # fmt: skip
    # Unconditional: a scheduled downgrade onto a one-off plan is charged and credited here
    # (once keys); a one-off plan's later monthly boundaries find those keys and add nothing.
    await state.start_period(session, sub, plan, catalog=catalog, now=now)
    state.record(
        session, sub, HistoryEvent.PERIOD_ROLLED, boundary, from_plan=ending.name,
        to_plan=plan.name, previous_start=old_start.isoformat(),
        period_start=new_start.isoformat(), period_end=new_end.isoformat(),
        status=sub.status, carried_micros=carry,
    )  # fmt: skip
    if plan.name != ending.name:
        await state.sync_customer_plan(session, sub)
    await session.flush()
    return plan.name != ending.name or sub.status != old_status


async def _unused_included(
    session: AsyncSession, sub: Subscription, period_start: datetime, period_end: datetime
) -> int:
    """Micros left unspent at `period_end` of the credits the subscription granted for the
    period starting `period_start` (included, upgrade and rollover grants): what is still in
    those lots plus what the ledger's sweep already moved out of them as expired."""
    grant_ids = set(
        await session.scalars(
            select(SubscriptionGrant.grant_id).where(
                SubscriptionGrant.subscription_id == sub.id,
                SubscriptionGrant.period_start == period_start,
                SubscriptionGrant.grant_id.is_not(None),
            )
        )
    )
    if not grant_ids:
        return 0
    grants = [
        g for g in await ledger_service.list_grants(session, sub.customer_id) if g.id in grant_ids
    ]
    unused = sum(g.remaining for g in grants if g.revoked_at is None)
    before: int | None = None
    while True:  # expiry entries are written at or after period_end: scan back to it
        page = await ledger_service.transactions(
            session, sub.customer_id, limit=_TRANSACTIONS_PAGE, before_id=before
        )
        for entry in page:
            if entry.kind == "expire" and entry.account_id in grant_ids:
                unused += -entry.amount
        if len(page) < _TRANSACTIONS_PAGE or page[-1].created_at < period_end:
            return unused
        before = page[-1].id


async def deliver_grants(
    db: Database,
    *,
    ledger: Ledger,
    clock: Clock,
    now: datetime | None = None,
    customer_id: str | None = None,
    limit: int = 1000,
) -> DeliveryReport:
    """Hand pending `subscription_grants` rows (oldest first, at most `limit`) to the
    ledger, with their idempotency keys, source `included`, and their expiry; mark each
    delivered (`credits_granted` history row) or skipped (already expired). Call it after
    committing a transaction that used the lifecycle functions. Safe to run concurrently.
    """
    at = now or clock.now()
    async with db.sessions() as session:
        query = select(SubscriptionGrant).where(SubscriptionGrant.delivered_at.is_(None))
        if customer_id is not None:
            query = query.where(SubscriptionGrant.customer_id == customer_id)
        rows = list(await session.scalars(query.order_by(SubscriptionGrant.id).limit(limit)))
    granted = skipped = failed = 0
    for row in rows:
        grant_id: str | None = None
        if row.expires_at is not None and row.expires_at <= max(at, clock.now()):
            outcome = "skipped"
        else:
            try:
                view = await ledger.grant(
                    row.customer_id,
                    row.amount_micros,
                    idempotency_key=row.idempotency_key,
                    expires_at=row.expires_at,
                    source="included",
                    description=row.description,
                    currency=row.currency,
                )
            except InvalidInput:
                outcome = "skipped"  # expired between our check and the ledger's
            except LedgerError:
                logger.exception("grant %s refused by the ledger", row.idempotency_key)
                failed += 1
                continue
            else:
                outcome, grant_id = "granted", view.id
        if await _mark(db, row, outcome=outcome, grant_id=grant_id, at=clock.now()):
            if outcome == "granted":
                granted += 1
            else:
                skipped += 1
    return DeliveryReport(granted=granted, skipped=skipped, failed=failed)


async def _mark(
    db: Database, row: SubscriptionGrant, *, outcome: str, grant_id: str | None, at: datetime
) -> bool:
    """Mark the row delivered once (the first marker wins); add its history row."""
    async with db.transaction() as session:
        result = await session.execute(
            update(SubscriptionGrant)
            .where(SubscriptionGrant.id == row.id, SubscriptionGrant.delivered_at.is_(None))
            .values(delivered_at=at, outcome=outcome, grant_id=grant_id)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        session.add(
            SubscriptionHistory(
                subscription_id=row.subscription_id,
                customer_id=row.customer_id,
                at=at,
                event=HistoryEvent.CREDITS_GRANTED.value,
                from_plan=None,
                to_plan=row.plan,
                details={
                    "kind": row.kind,
                    "amount_micros": row.amount_micros,
                    "outcome": outcome,
                    "grant_id": grant_id,
                    "idempotency_key": row.idempotency_key,
                    "expires_at": None if row.expires_at is None else row.expires_at.isoformat(),
                },
            )
        )
    return True
