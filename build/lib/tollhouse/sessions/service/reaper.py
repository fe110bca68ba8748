"""The reaper and the extender: what keeps metered sessions paid, and closes what was left.

`reap` (`tollhouse sessions reap`, and each `tick`):
1. ends every running metered session that is due (`settle.due`): its paid time ran out
   (reason `lapsed`, ended at `paid_until`) or its heartbeat deadline passed (`heartbeat`,
   ended at the deadline);
2. settles every ended, unsettled metered session (a process died between ending it and
   settling it, or this pass ended it);
3. captures orphaned flat-session fees: a wallet-paid flat session whose hold is still open
   (its process died between the session's commit and the capture) is captured at its fee.

`tick` (every `serve` process, every slice / 5 seconds) reaps, then captures the used-up
slices of running sessions in full, then extends every running session with less than one
slice of paid time left; a session whose wallet cannot cover the next slice is stopped
(reason `credit`) and settled.

Everything works from the database: no session has an owner process, any process may extend
or reap any session. Two processes at once do each thing once: ends are conditional
(`settle.end_metered`), a slice is recorded by a conditional update of `paid_until` and its
hold is found again by its key, marks are written under the session's row lock before the
ledger is called, and ledger calls are idempotent.

Batches: each step handles up to `BATCH` sessions in one transaction (their rows locked in id
order, the same in every process, so two processes never deadlock), and issues their ledger
calls side by side, which the ledger writer commits together: a pass costs a few commits,
not a few per session.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from sqlalchemy import func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog, ComputeSessions
from tollhouse.clock import Clock
from tollhouse.ledger import HoldStatus, HoldView, InsufficientCredit, Ledger
from tollhouse.ledger.models import holds_table
from tollhouse.sessions.billing import slice_micros
from tollhouse.sessions.models import (
    EndReason,
    PaidWith,
    Session,
    SessionKind,
    SessionSlice,
    SessionStatus,
)
from tollhouse.sessions.schemas import ReapReport
from tollhouse.sessions.service.metered import HOLD_GRACE_SECONDS, SLICE_PURPOSE, warn_low_credit
from tollhouse.sessions.service.settle import due, end_metered, settle_many, slice_key
from tollhouse.storage import Database

log = logging.getLogger(__name__)

BATCH = 500
"""Most sessions one transaction of a pass handles."""

H = holds_table.c
_RUNNING = (Session.kind == SessionKind.METERED, Session.status == SessionStatus.ACTIVE)
T = TypeVar("T")


def _batches(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


async def reap(db: Database, ledger: Ledger, *, catalog: Catalog, clock: Clock) -> ReapReport:
    """End the running metered sessions that are due, settle every ended one that is not,
    capture orphaned flat-session fees (see the module's docstring). Idempotent.

    Raises:
        DBAPIError: the database failed; what was committed stays done, the next pass does
            the rest.
    """
    settings = catalog.compute_sessions
    now = clock.now()
    overdue = [Session.paid_until <= now]
    if settings.heartbeat_timeout_seconds is not None:
        deadline = now - timedelta(seconds=settings.heartbeat_timeout_seconds)
        overdue.append(Session.last_heartbeat_at <= deadline)
    async with db.transaction() as session:
        candidates = list(
            await session.scalars(
                select(Session.id).where(*_RUNNING, or_(*overdue)).order_by(Session.id)
            )
        )
    ended: Counter[str] = Counter()
    for batch in _batches(candidates):
        async with db.transaction() as session:
            for session_id in batch:
                row = await end_metered(session, session_id, None, settings=settings, clock=clock)
                if row is not None:
                    ended[str(row.end_reason)] += 1
    async with db.transaction() as session:
        unsettled = list(
            await session.scalars(
                select(Session.id)
                .where(
                    Session.kind == SessionKind.METERED,
                    Session.status == SessionStatus.ENDED,
                    Session.settled_at.is_(None),
                )
                .order_by(Session.id)
            )
        )
    settled = 0
    for batch in _batches(unsettled):
        settled += await settle_many(db, ledger, batch, clock=clock)
    fees = await _capture_orphaned_fees(db, ledger)
    return ReapReport(ended=dict(ended), settled=settled, fees_captured=fees)


async def _capture_orphaned_fees(db: Database, ledger: Ledger) -> int:
    """Capture the open fee holds of wallet-paid flat sessions at their amount (what the
    start would have captured). Returns how many were captured."""
    async with db.transaction() as session:
        rows = list(
            await session.execute(
                select(Session.hold_id, Session.customer_id, H.amount)
                .join(holds_table, H.id == Session.hold_id)
                .where(
                    Session.kind == SessionKind.FLAT,
                    Session.paid_with == PaidWith.WALLET,
                    H.status == HoldStatus.OPEN.value,
                )
            )
        )
    return await _captured(
        ledger, [(hold_id, customer_id, amount) for hold_id, customer_id, amount in rows]
    )


async def _captured(ledger: Ledger, holds: list[tuple[str, str, int]]) -> int:
    """Capture `(hold_id, customer_id, amount)` side by side; returns how many succeeded
    (a failure is logged: the next pass finds the hold open again)."""
    outcomes = await asyncio.gather(
        *(
            ledger.capture(hold_id, amount, customer_id=customer)
            for hold_id, customer, amount in holds
        ),
        return_exceptions=True,
    )
    for (hold_id, _, _), outcome in zip(holds, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            log.error("capturing hold %s failed, retried next pass", hold_id, exc_info=outcome)
    return sum(not isinstance(outcome, BaseException) for outcome in outcomes)


async def tick(db: Database, ledger: Ledger, *, catalog: Catalog, clock: Clock) -> ReapReport:
    """One pass of `serve`'s loop: `reap`, capture used-up slices, extend what needs it.

    Raises:
        DBAPIError: as `reap`.
    """
    report = await reap(db, ledger, catalog=catalog, clock=clock)
    captured = await _capture_used(db, ledger, settings=catalog.compute_sessions, clock=clock)
    extended, stopped = await _extend_all(
        db, ledger, settings=catalog.compute_sessions, clock=clock
    )
    ended = Counter(report.ended)
    if stopped:
        ended[EndReason.CREDIT.value] += stopped
    return ReapReport(
        ended=dict(ended),
        settled=report.settled + stopped,
        fees_captured=report.fees_captured,
        extended=extended,
        captured=captured,
    )


async def _capture_used(
    db: Database, ledger: Ledger, *, settings: ComputeSessions, clock: Clock
) -> int:
    """Capture in full the open holds of running sessions' slices that ended by now (and
    before the session is due): mark each slice first, under the session's row lock, then
    ask the ledger. Returns how many holds were captured."""
    now = clock.now()
    async with db.transaction() as session:
        ids = list(
            await session.scalars(
                select(SessionSlice.session_id)
                .join(holds_table, H.id == SessionSlice.hold_id)
                .join(Session, Session.id == SessionSlice.session_id)
                .where(*_RUNNING, SessionSlice.ends_at <= now, H.status == HoldStatus.OPEN.value)
                .distinct()
                .order_by(SessionSlice.session_id)
            )
        )
    count = 0
    for batch in _batches(ids):
        async with db.transaction() as session:
            marked = await _mark_used(session, batch, settings=settings, now=now)
        count += await _captured(ledger, marked)
    return count


async def _mark_used(
    session: AsyncSession, session_ids: Sequence[str], *, settings: ComputeSessions, now: datetime
) -> list[tuple[str, str, int]]:
    """Lock the running sessions among `session_ids` (in id order) and mark their slices
    with an open hold that were used up by `now` (and before the session is due) as
    captured in full; returns `(hold_id, customer_id, amount)` of each."""
    rows = await session.scalars(
        select(Session)
        .where(Session.id.in_(session_ids), *_RUNNING)
        .order_by(Session.id)
        .with_for_update()
    )
    limits = {row.id: (min(now, due(row, settings).at), row.customer_id) for row in rows}
    if not limits:
        return []
    pieces = await session.execute(
        select(SessionSlice.session_id, SessionSlice.number, SessionSlice.ends_at, H.id, H.amount)
        .join(holds_table, H.id == SessionSlice.hold_id)
        .where(SessionSlice.session_id.in_(limits), H.status == HoldStatus.OPEN.value)
    )
    used = [piece for piece in pieces if piece.ends_at <= limits[piece.session_id][0]]
    if used:
        await session.execute(
            update(SessionSlice)
            .where(
                tuple_(SessionSlice.session_id, SessionSlice.number).in_(
                    [(piece.session_id, piece.number) for piece in used]
                )
            )
            .values(captured_micros=SessionSlice.amount_micros)
            .execution_options(synchronize_session=False)
        )
    return [(piece.id, limits[piece.session_id][1], piece.amount) for piece in used]


@dataclass(frozen=True, slots=True)
class _Next:
    """The next slice of a running session: `[start, end)` seconds after its start."""

    row: Session
    number: int
    start: int
    end: int

    @property
    def key(self) -> str:
        return slice_key(self.row.id, self.number)

    @property
    def amount(self) -> int:
        assert self.row.rate_micros_per_hour is not None
        return slice_micros(self.start, self.end, self.row.rate_micros_per_hour)


async def _extend_all(
    db: Database, ledger: Ledger, *, settings: ComputeSessions, clock: Clock
) -> tuple[int, int]:
    """Extend each running session with less than one slice of paid time left and not due.
    Returns (slices added, sessions stopped for credit)."""
    now = clock.now()
    lead = timedelta(seconds=settings.slice_seconds)
    async with db.transaction() as session:
        rows = [
            row
            for row in await session.scalars(
                select(Session)
                .where(*_RUNNING, Session.paid_until < now + lead)
                .order_by(Session.id)
            )
            if due(row, settings).at > now
        ]
    added = stopped = 0
    for batch in _batches(rows):
        more, short = await _extend(db, ledger, batch, settings=settings, clock=clock)
        added, stopped = added + more, stopped + short
    return added, stopped


async def _extend(
    db: Database,
    ledger: Ledger,
    rows: Sequence[Session],
    *,
    settings: ComputeSessions,
    clock: Clock,
) -> tuple[int, int]:
    """Hold the next slice of each of `rows` (side by side), record them in one transaction,
    release holds that came too late (the session ended meanwhile), stop the sessions their
    wallet could not extend. Returns (slices added, sessions stopped)."""
    plans = await _plan(db, rows, settings=settings)
    holds = await asyncio.gather(*(_hold(ledger, plan) for plan in plans), return_exceptions=True)
    short = [
        plan
        for plan, hold in zip(plans, holds, strict=True)
        if isinstance(hold, InsufficientCredit)
    ]
    ready: list[tuple[_Next, HoldView | None]] = []
    for plan, hold in zip(plans, holds, strict=True):
        if isinstance(hold, BaseException):
            if not isinstance(hold, InsufficientCredit):
                log.error(
                    "session %s: holding slice %d failed", plan.row.id, plan.number, exc_info=hold
                )
        elif hold is not None and hold.status != HoldStatus.OPEN.value:
            log.error(
                "session %s: slice %d's hold %s is %s",
                plan.row.id,
                plan.number,
                hold.id,
                hold.status,
            )
        else:
            ready.append((plan, hold))
    async with db.transaction() as session:
        outcomes = await _record(session, ready, clock=clock)
    stale = [hold for (_, hold), outcome in zip(ready, outcomes, strict=True) if outcome == "stale"]
    await asyncio.gather(*(ledger.void(h.id, customer_id=h.customer_id) for h in stale if h))
    fresh = [
        (plan.row.id, plan.row.rate_micros_per_hour or 0, hold)
        for (plan, hold), outcome in zip(ready, outcomes, strict=True)
        if outcome == "added" and hold is not None and not hold.replayed
    ]
    await warn_low_credit(db, fresh, settings=settings, clock=clock)
    stopped = await _stop_for_credit(
        db, ledger, [plan.row.id for plan in short], settings=settings, clock=clock
    )
    return outcomes.count("added"), stopped


async def _plan(db: Database, rows: Sequence[Session], *, settings: ComputeSessions) -> list[_Next]:
    """The next slice of each session: number and bounds; a slice already held by a process
    that died before recording it keeps the bounds it was held with (its hold's metadata)."""
    async with db.transaction() as session:
        numbers: dict[str, int] = {
            session_id: number
            for session_id, number in await session.execute(
                select(SessionSlice.session_id, func.max(SessionSlice.number))
                .where(SessionSlice.session_id.in_([row.id for row in rows]))
                .group_by(SessionSlice.session_id)
            )
        }
        plans = []
        for row in rows:
            assert row.paid_until is not None
            start = (row.paid_until - row.started_at) // timedelta(seconds=1)
            number = numbers.get(row.id, 0) + 1
            plans.append(_Next(row, number, start, start + settings.slice_seconds))
        earlier = await session.execute(
            select(H.idempotency_key, H.metadata).where(
                tuple_(H.customer_id, H.idempotency_key).in_(
                    [(plan.row.customer_id, plan.key) for plan in plans]
                )
            )
        )
    ends = {key: int(meta["ends_seconds"]) for key, meta in earlier}
    return [
        _Next(plan.row, plan.number, plan.start, ends.get(plan.key, plan.end)) for plan in plans
    ]


async def _hold(ledger: Ledger, plan: _Next) -> HoldView | None:
    """Hold the slice (None when it costs nothing). Raises `InsufficientCredit`."""
    if plan.amount == 0:
        return None
    return await ledger.hold(
        plan.row.customer_id,
        plan.amount,
        idempotency_key=plan.key,
        currency=plan.row.currency,
        expires_at=plan.row.started_at + timedelta(seconds=plan.end + HOLD_GRACE_SECONDS),
        metadata={
            "purpose": SLICE_PURPOSE,
            "session_id": plan.row.id,
            "slice": plan.number,
            "starts_seconds": plan.start,
            "ends_seconds": plan.end,
        },
    )


async def _record(
    session: AsyncSession, ready: Sequence[tuple[_Next, HoldView | None]], *, clock: Clock
) -> list[Literal["added", "taken", "stale"]]:
    """Write each slice and move its session's `paid_until` to its end, if the session still
    runs and its paid time still ends where the slice starts (a conditional update: two
    processes never record two slices for one stretch): `added`. Otherwise `taken` when a
    slice row already has the hold (another process recorded it), else `stale` (the session
    ended: the caller releases the hold)."""
    moved: list[bool] = []
    added = []
    for plan, hold in ready:
        row = plan.row
        starts_at = row.started_at + timedelta(seconds=plan.start)
        ends_at = row.started_at + timedelta(seconds=plan.end)
        result = await session.execute(
            update(Session)
            .where(
                Session.id == row.id,
                Session.status == SessionStatus.ACTIVE,
                Session.paid_until == starts_at,
            )
            .values(paid_until=ends_at)
            .execution_options(synchronize_session=False)
        )
        moved.append(getattr(result, "rowcount", 0) == 1)
        if moved[-1]:
            added.append(
                {
                    "session_id": row.id,
                    "number": plan.number,
                    "starts_at": starts_at,
                    "ends_at": ends_at,
                    "amount_micros": hold.amount if hold else 0,
                    "hold_id": hold.id if hold else None,
                    "created_at": clock.now(),
                }
            )
    if added:
        await session.execute(insert(SessionSlice), added)
    unplaced = [hold.id for (_, hold), ok in zip(ready, moved, strict=True) if hold and not ok]
    recorded = set()
    if unplaced:
        recorded = set(
            await session.scalars(
                select(SessionSlice.hold_id).where(SessionSlice.hold_id.in_(unplaced))
            )
        )
    return [
        "added" if ok else "taken" if hold is None or hold.id in recorded else "stale"
        for (_, hold), ok in zip(ready, moved, strict=True)
    ]


async def _stop_for_credit(
    db: Database,
    ledger: Ledger,
    session_ids: list[str],
    *,
    settings: ComputeSessions,
    clock: Clock,
) -> int:
    """End the sessions whose wallet could not cover their next slice (reason `credit`,
    billed for what they used) and settle them. Returns how many this call ended."""
    if not session_ids:
        return 0
    ended = []
    async with db.transaction() as session:
        for session_id in session_ids:
            row = await end_metered(
                session, session_id, EndReason.CREDIT, settings=settings, clock=clock
            )
            if row is not None:
                ended.append(session_id)
    await settle_many(db, ledger, ended, clock=clock)
    return len(ended)
