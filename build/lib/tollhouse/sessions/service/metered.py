"""Metered (compute) sessions: estimate, start, heartbeat, and the low-credit warning.

A metered session runs on a resource tier at its plan's hourly rate (frozen at the start),
billed by the second (`sessions.billing`). Its paid time is a chain of slice holds on the
wallet, one `session_slices` row each, and `paid_until` is where the last one ends:

- Start: the plan must offer the tier (403 `resource-tier-not-in-plan`, naming the lowest
  plan that does) and price it. Like a wallet-paid flat start: hold the minimum run first
  (nothing is stored when the wallet cannot cover it: 402), then commit the session, its
  slice 1 and `session.started` in one transaction. The hold's key is derived from the
  start's idempotency key and its metadata carries the session id and terms, so a retry
  after a crash finds the same hold and writes the same session once. A rate of 0 holds
  nothing (free sessions still have slices, of 0 micros).
- Running (`sessions.service.reaper`, in every `serve` process, from the database alone):
  once less than one slice of paid time is left, the next slice is held (keyed by session
  and slice number, so two processes or a retry find the same hold) and recorded by a
  conditional update of `paid_until`; when the wallet cannot cover it, the session is
  stopped at once (reason `credit`) and billed for what it used. Slices used up are
  captured in full as the session goes (their share of any final bill is whole), so only
  the last one or two are open. `session.low_credit` fires once per downward crossing of
  the catalog's `low_credit_slices`.
- End (`sessions.service.settle`): one transaction decides the bill; settling the holds
  follows and is idempotent; the reaper finishes what a dead process left.

Holds expire `HOLD_GRACE_SECONDS` after the end of their slice, so the hold sweeper never
voids a slice of a running session; a slice left unsettled that long (no tollhouse process
ran for a day) can no longer be collected, and a hold orphaned by a crash is released by then
at the latest.

Bound on unpaid running time: a session is never billed beyond its holds, and while any
tollhouse process runs it is never running without a hold ahead of it: holds are taken a
slice ahead, a session the wallet cannot extend stops with its current slice still paid,
and one whose heartbeats stopped ends at its deadline. Unpaid time only arises when every
process is down: the session's paid time may then run out; the first process to start ends
it at `paid_until` (reason `lapsed`), billing no more than was held. With processes
running, the time a session runs after its wallet emptied is at most one slice, and paid.
tollhouse stops the billing, not the workload: a workload learns that its session ended
from its next heartbeat (402 `session-ended`) or by reading the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog, ComputeSessions
from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.events import service as events
from tollhouse.ids import new_id
from tollhouse.ledger import HoldView, Ledger
from tollhouse.ledger import service as ledger_reads
from tollhouse.sessions.billing import cost_micros, slice_micros
from tollhouse.sessions.errors import (
    SessionEnded,
    SessionNotMetered,
    StartAbandoned,
    TierNotPriced,
)
from tollhouse.sessions.models import (
    PaidWith,
    Session,
    SessionKind,
    SessionSlice,
    SessionStatus,
)
from tollhouse.sessions.schemas import Estimate, SessionView, Started
from tollhouse.sessions.service.lifecycle import by_key, check_key
from tollhouse.sessions.service.settle import due, end_metered, owned, settle
from tollhouse.sessions.service.starts import SESSION_HOLD_PREFIX
from tollhouse.storage import Database
from tollhouse.subscriptions import SubscriptionNotFound
from tollhouse.subscriptions import service as subscriptions

HOLD_GRACE_SECONDS = 86_400
"""A slice hold expires this long after its slice ends (see the module's docstring)."""
MAX_ESTIMATE_SECONDS = 366 * 86_400
"""Longest run `estimate` prices."""
PRODUCT_PREFIX = "compute:"
"""A metered session's `product`: this prefix and its tier (not a catalog product name)."""
SLICE_PURPOSE = "session_slice"
"""The `purpose` in a slice hold's metadata."""


async def _rate(
    session: AsyncSession, catalog: Catalog, customer_id: str, tier: str
) -> tuple[str, int]:
    """The customer's plan and its rate for `tier`, micros per hour.

    Raises:
        CustomerNotFound, PlanNotFound: unknown customer or plan.
        ResourceTierNotInPlan: the plan does not offer the tier.
        TierNotPriced: the plan offers it without a rate.
    """
    customer = await customers.get(session, customer_id)
    plan = catalog.require_tier(customer.plan, tier)
    rate = plan.session_rate_micros(tier)
    if rate is None:
        raise TierNotPriced(
            f"plan {plan.name!r} offers resource tier {tier!r} without a session rate",
            tier=tier,
            plan=plan.name,
        )
    return plan.name, rate


async def estimate(
    session: AsyncSession,
    customer_id: str,
    *,
    catalog: Catalog,
    resource_tier: str,
    duration_seconds: int,
) -> Estimate:
    """What running a metered session on `resource_tier` for `duration_seconds` (1 s to 366
    days) would cost the customer at its plan's rate, and what a start would hold.

    Raises:
        InvalidInput: duration out of range.
        CustomerNotFound, ResourceTierNotInPlan, TierNotPriced: as `start_metered`.
    """
    if not 1 <= duration_seconds <= MAX_ESTIMATE_SECONDS:
        msg = f"must be between 1 and {MAX_ESTIMATE_SECONDS} seconds"
        raise InvalidInput(
            f"duration_seconds {msg}", errors=[{"loc": "duration_seconds", "msg": msg}]
        )
    plan, rate = await _rate(session, catalog, customer_id, resource_tier)
    settings = catalog.compute_sessions
    return Estimate(
        resource_tier=resource_tier,
        plan=plan,
        rate_micros_per_hour=rate,
        duration_seconds=duration_seconds,
        cost_micros=cost_micros(duration_seconds, rate),
        min_run_seconds=settings.min_run_seconds,
        start_hold_micros=cost_micros(settings.min_run_seconds, rate),
        slice_seconds=settings.slice_seconds,
        slice_micros=cost_micros(settings.slice_seconds, rate),
        currency=catalog.currency,
    )


@dataclass(frozen=True, slots=True)
class _Terms:
    """What a start agreed on; kept in its hold's metadata so a retry agrees again."""

    session_id: str
    resource_tier: str
    rate_micros_per_hour: int
    min_run_seconds: int

    def metadata(self) -> dict[str, Any]:
        return {
            "purpose": SLICE_PURPOSE,
            "session_id": self.session_id,
            "resource_tier": self.resource_tier,
            "rate_micros_per_hour": self.rate_micros_per_hour,
            "slice": 1,
            "starts_seconds": 0,
            "ends_seconds": self.min_run_seconds,
        }

    @classmethod
    def of(cls, hold: HoldView, key: str) -> _Terms:
        """The terms in a start's hold. Raises `IdempotencyKeyReused` for another start's."""
        meta = hold.metadata
        if meta.get("purpose") != SLICE_PURPOSE or meta.get("slice") != 1:
            raise IdempotencyKeyReused(
                f"idempotency key {key!r} started a session of another kind",
                fields=["resource_tier"],
                hold_id=hold.id,
            )
        return cls(
            str(meta["session_id"]),
            str(meta["resource_tier"]),
            int(meta["rate_micros_per_hour"]),
            int(meta["ends_seconds"]),
        )


def _same_tier(row: Session, tier: str, key: str) -> None:
    if row.kind != SessionKind.METERED or row.resource_tier != tier:
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} started another session",
            fields=["resource_tier" if row.kind == SessionKind.METERED else "product"],
            session_id=row.id,
        )


class _LostRace(Exception):
    """A concurrent start with the same key wrote the session first."""


async def start_metered(
    db: Database,
    ledger: Ledger,
    *,
    catalog: Catalog,
    clock: Clock,
    customer_id: str,
    resource_tier: str,
    idempotency_key: str,
) -> Started:
    """Start a metered session on `resource_tier` for the customer, holding its minimum run
    at the plan's rate (see the module's docstring). A customer may run several at once.

    Raises:
        InvalidInput: empty or oversized idempotency key.
        CustomerNotFound: no such customer.
        ResourceTierNotInPlan: the customer's plan does not offer the tier (403).
        TierNotPriced: the plan has no rate for it (409).
        QuotaExceeded: the plan's `compute_seconds` quota has no room for the minimum run
            (counted from the seconds of the period's ended sessions; 429).
        InsufficientCredit: the wallet cannot cover the minimum run (nothing stored).
        IdempotencyKeyReused: the key started another session (a flat one, another tier).
        StartAbandoned: the key's start was cut off and its hold has been released.
    """
    key = check_key(idempotency_key)
    hold_key = SESSION_HOLD_PREFIX + key
    async with db.transaction() as session:
        await customers.get(session, customer_id)
        existing = await by_key(session, customer_id, key)
        if existing is not None:
            _same_tier(existing, resource_tier, key)
            return Started(SessionView.of(existing, clock.now()), replayed=True)
        _, rate = await _rate(session, catalog, customer_id, resource_tier)
        min_run = catalog.compute_sessions.min_run_seconds
        if "compute_seconds" in catalog.meters:
            try:
                await subscriptions.enforce_quota(
                    session, customer_id, "compute_seconds", min_run, catalog=catalog, clock=clock
                )
            except SubscriptionNotFound:
                pass  # no plan period to count in: nothing capped
        earlier = await ledger_reads.find_hold(session, customer_id, hold_key)
    terms = (
        _Terms(new_id("ses"), resource_tier, rate, min_run)
        if earlier is None
        else _Terms.of(earlier, key)
    )
    if terms.resource_tier != resource_tier:
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} started a session on another tier",
            fields=["resource_tier"],
            session_id=terms.session_id,
        )
    amount = slice_micros(0, terms.min_run_seconds, terms.rate_micros_per_hour)
    hold: HoldView | None = None
    if amount > 0:
        hold = await ledger.hold(
            customer_id,
            amount,
            idempotency_key=hold_key,
            currency=catalog.currency,
            expires_at=clock.now() + timedelta(seconds=min_run + HOLD_GRACE_SECONDS),
            metadata=terms.metadata(),
        )
        terms = _Terms.of(hold, key)
    try:
        row = await _insert(db, clock, customer_id, key, terms, hold, catalog.currency)
    except _LostRace:
        async with db.transaction() as session:
            won = await by_key(session, customer_id, key)
            if won is None:
                raise
            _same_tier(won, resource_tier, key)
            return Started(SessionView.of(won, clock.now()), replayed=True)
    if row.status == SessionStatus.ACTIVE and hold is not None and not hold.replayed:
        await warn_low_credit(
            db, [(row.id, terms.rate_micros_per_hour, hold)],
            settings=catalog.compute_sessions, clock=clock,
        )  # fmt: skip
    return Started(SessionView.of(row, clock.now()), replayed=hold is not None and hold.replayed)


async def _insert(
    db: Database,
    clock: Clock,
    customer_id: str,
    key: str,
    terms: _Terms,
    hold: HoldView | None,
    currency: str,
) -> Session:
    """Commit the session, its slice 1 and `session.started`; an earlier row with the key
    (a replay racing this one) is answered instead.

    Raises:
        _LostRace: a concurrent start with the key committed first.
        StartAbandoned: the start's hold was released before its session was written.
    """
    async with db.transaction() as session:
        existing = await by_key(session, customer_id, key)
        if existing is not None:
            return existing
        if hold is not None and hold.status != "open":
            raise StartAbandoned(
                f"the start with idempotency key {key!r} was cut off and its hold released; "
                "start again with a new key",
                hold_id=hold.id,
                hold_status=hold.status,
            )
        now = clock.now()
        paid_until = now + timedelta(seconds=terms.min_run_seconds)
        row = Session(
            id=terms.session_id,
            customer_id=customer_id,
            kind=SessionKind.METERED,
            product=PRODUCT_PREFIX + terms.resource_tier,
            status=SessionStatus.ACTIVE,
            active_product=None,
            started_at=now,
            expires_at=None,
            token_cap=None,
            tokens_used=0,
            fee_micros=0,
            currency=currency,
            paid_with=PaidWith.WALLET,
            hold_id=hold.id if hold else None,
            idempotency_key=key,
            resource_tier=terms.resource_tier,
            rate_micros_per_hour=terms.rate_micros_per_hour,
            paid_until=paid_until,
            last_heartbeat_at=now,
        )
        first = SessionSlice(
            session_id=row.id,
            number=1,
            starts_at=now,
            ends_at=paid_until,
            amount_micros=hold.amount if hold else 0,
            hold_id=hold.id if hold else None,
            created_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(row)
                session.add(first)
        except IntegrityError as exc:
            raise _LostRace from exc
        await events.emit(
            session,
            customer_id=customer_id,
            type="session.started",
            data={
                "session_id": row.id,
                "product": row.product,
                "kind": row.kind,
                "resource_tier": row.resource_tier,
                "rate_micros_per_hour": row.rate_micros_per_hour,
                "hold_micros": first.amount_micros,
                "paid_until": paid_until.isoformat(),
            },
            clock=clock,
        )
    return row


async def heartbeat(
    db: Database,
    ledger: Ledger,
    session_id: str,
    *,
    catalog: Catalog,
    clock: Clock,
    customer_id: str | None = None,
) -> SessionView:
    """Record that the workload of a running metered session is alive (`last_heartbeat_at`
    = now), and answer the session. A session already due to end (its heartbeat deadline or
    paid time passed) is ended and settled here instead, like the reaper would.

    Raises:
        SessionNotFound: unknown id, or (given `customer_id`) another customer's session.
        SessionNotMetered: a flat session.
        SessionEnded: the session has ended (the workload should stop).
    """
    settings = catalog.compute_sessions
    async with db.transaction() as session:
        row = await owned(session, session_id, customer_id, lock=True)
        if row.kind != SessionKind.METERED:
            raise SessionNotMetered(
                f"session {session_id!r} is a flat session; only metered sessions take heartbeats",
                session_id=session_id,
                kind=row.kind,
            )
        if row.status == SessionStatus.ACTIVE:
            now = clock.now()
            limit = due(row, settings)
            if limit.at > now:
                row.last_heartbeat_at = now
                return SessionView.of(row, now)
            await end_metered(session, session_id, limit.reason, settings=settings, clock=clock)
    await settle(db, ledger, session_id, clock=clock)
    async with db.transaction() as session:
        row = await owned(session, session_id, None)
    raise SessionEnded(
        f"session {session_id!r} ended ({row.end_reason}): stop the workload",
        session_id=session_id,
        reason=row.end_reason,
        product=row.product,
        resource_tier=row.resource_tier,
    )


async def warn_low_credit(
    db: Database,
    holds: Sequence[tuple[str, int, HoldView]],
    *,
    settings: ComputeSessions,
    clock: Clock,
) -> None:
    """After new slice holds (`(session_id, rate_micros_per_hour, hold)`): emit `session.low_credit` for each
    running session whose wallet, as the hold left it (`available_after_micros`: its live
    credits; an overdraft line is not counted), covers fewer than the catalog's
    `low_credit_slices` further slices; once per downward crossing (the mark is cleared when
    a later hold leaves enough). Nothing when the threshold is 0. Writes only when a mark
    changes, in one transaction.
    """
    if settings.low_credit_slices == 0:
        return
    low: dict[str, tuple[HoldView, int, int]] = {}
    fine: list[str] = []
    for session_id, rate, hold in holds:
        after, ends = hold.available_after_micros, int(hold.metadata["ends_seconds"])
        next_micros = slice_micros(ends, ends + settings.slice_seconds, rate)
        if after is None or next_micros == 0:
            continue
        slices_left = max(0, after) // next_micros
        if slices_left < settings.low_credit_slices:
            low[session_id] = (hold, next_micros, slices_left)
        else:
            fine.append(session_id)
    async with db.transaction() as session:
        if fine:
            await session.execute(
                update(Session)
                .where(Session.id.in_(fine), Session.low_credit_at.is_not(None))
                .values(low_credit_at=None)
                .execution_options(synchronize_session=False)
            )
        for session_id in sorted(low):
            hold, next_micros, slices_left = low[session_id]
            await _mark_low(session, session_id, hold, next_micros, slices_left, clock=clock)


async def _mark_low(
    session: AsyncSession,
    session_id: str,
    hold: HoldView,
    next_micros: int,
    slices_left: int,
    *,
    clock: Clock,
) -> None:
    """Set the session's low-credit mark unless set, and emit `session.low_credit` then."""
    now = clock.now()
    marked = await session.execute(
        update(Session)
        .where(
            Session.id == session_id,
            Session.status == SessionStatus.ACTIVE,
            Session.low_credit_at.is_(None),
        )
        .values(low_credit_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(marked, "rowcount", 0) != 1:
        return
    await events.emit(
        session,
        customer_id=hold.customer_id,
        type="session.low_credit",
        data={
            "session_id": session_id,
            "available_micros": hold.available_after_micros,
            "slice_micros": next_micros,
            "slices_left": slices_left,
        },
        clock=clock,
    )
