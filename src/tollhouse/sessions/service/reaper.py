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
or reap any session. Two processes at once do each step once: ends are conditional
(`settle.end_metered`), a slice is recorded by a conditional update of `paid_until` and its
hold is found again by its key, marks are written under the session's row lock before the
ledger is called, and ledger calls are idempotent.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog, ComputeSessions
from tollhouse.clock import Clock
from tollhouse.ledger import HoldStatus, HoldView, InsufficientCredit, Ledger
from tollhouse.ledger import service as ledger_reads
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
from tollhouse.sessions.service.settle import due, end_metered, settle, slice_key, slices
from tollhouse.storage import Database

log = logging.getLogger(__name__)

H = holds_table.c
_RUNNING = (Session.kind == SessionKind.METERED, Session.status == SessionStatus.ACTIVE)


async def reap(db: Database, ledger: Ledger, *, catalog: Catalog, clock: Clock) -> ReapReport:
    """End the running metered sessions that are due, settle every ended one that is not,
    capture orphaned flat-session fees (see the module's docstring). Idempotent.

    Raises:
        LedgerError: a transient ledger failure (what was done stays done; the next pass
            does the rest).
    """
    settings = catalog.compute_sessions
    ended: Counter[str] = Counter()
    now = clock.now()
    async with db.transaction() as session:
        overdue = [Session.paid_until <= now]
        if settings.heartbeat_timeout_seconds is not None:
            deadline = now - timedelta(seconds=settings.heartbeat_timeout_seconds)
            overdue.append(Session.last_heartbeat_at <= deadline)
        candidates = list(await session.scalars(select(Session.id).where(*_RUNNING, or_(*overdue))))
    for session_id in candidates:
        async with db.transaction() as session:
            row = await end_metered(
                session, session_id, EndReason.LAPSED, settings=settings, clock=clock
            )
            if row is not None:
                ended[str(row.end_reason)] += 1
    async with db.transaction() as session:
        unsettled = list(
            await session.scalars(
                select(Session.id).where(
                    Session.kind == SessionKind.METERED,
                    Session.status == SessionStatus.ENDED,
                    Session.settled_at.is_(None),
                )
            )
        )
    settled = 0
    for session_id in unsettled:
        settled += await settle(db, ledger, session_id, clock=clock)
    fees = await _capture_orphaned_fees(db, ledger)
    return ReapReport(ended=dict(ended), settled=settled, fees_captured=fees)


async def _capture_orphaned_fees(db: Database, ledger: Ledger) -> int:
    """Capture the open fee holds of wallet-paid flat sessions at their amount (what the
    start would have captured). Returns how many."""
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
    for hold_id, customer_id, amount in rows:
        await ledger.capture(hold_id, amount, customer_id=customer_id)
    return len(rows)


async def tick(db: Database, ledger: Ledger, *, catalog: Catalog, clock: Clock) -> ReapReport:
    """One pass of `serve`'s loop: `reap`, capture used-up slices, extend what needs it.

    Raises:
        LedgerError: as `reap`.
    """
    report = await reap(db, ledger, catalog=catalog, clock=clock)
    captured = await _capture_used(db, ledger, settings=catalog.compute_sessions, clock=clock)
    extended, stopped = await _extend_all(db, ledger, catalog=catalog, clock=clock)
    ended = Counter(report.ended)
    ended.update({EndReason.CREDIT.value: stopped} if stopped else {})
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
            )
        )
    count = 0
    for session_id in ids:
        async with db.transaction() as session:
            marked = await _mark_used(session, session_id, settings=settings, now=clock.now())
        for hold_id, customer_id, amount in marked:
            await ledger.capture(hold_id, amount, customer_id=customer_id)
            count += 1
    return count


async def _mark_used(
    session: AsyncSession, session_id: str, *, settings: ComputeSessions, now: datetime
) -> list[tuple[str, str, int]]:
    """Mark the running session's slices used up by `now` (and before it is due) as captured
    in full; returns `(hold_id, customer_id, amount)` of every marked slice with a hold."""
    row = await session.get(Session, session_id, with_for_update=True, populate_existing=True)
    if row is None or row.status != SessionStatus.ACTIVE:
        return []
    limit = min(now, due(row, settings).at)
    marked = []
    for piece in await slices(session, session_id):
        if piece.ends_at > limit or piece.hold_id is None:
            continue
        piece.captured_micros = piece.amount_micros
        marked.append((piece.hold_id, row.customer_id, piece.amount_micros))
    return marked


async def _extend_all(
    db: Database, ledger: Ledger, *, catalog: Catalog, clock: Clock
) -> tuple[int, int]:
    """Extend each running session with less than one slice of paid time left. Returns
    (slices added, sessions stopped for credit)."""
    lead = timedelta(seconds=catalog.compute_sessions.slice_seconds)
    async with db.transaction() as session:
        ids = list(
            await session.scalars(
                select(Session.id).where(*_RUNNING, Session.paid_until < clock.now() + lead)
            )
        )
    extended = stopped = 0
    for session_id in ids:
        outcome = await extend(db, ledger, session_id, catalog=catalog, clock=clock)
        extended += outcome is True
        stopped += outcome is None
    return extended, stopped


async def extend(
    db: Database, ledger: Ledger, session_id: str, *, catalog: Catalog, clock: Clock
) -> bool | None:
    """Hold and record the next slice of a running session with less than one slice of paid
    time left: True when a slice was added, False when there was nothing to do (not running,
    not due for a slice, due to end, or another process added it), None when the wallet
    could not cover it and the session was stopped (reason `credit`) and settled.

    Raises:
        LedgerError: a transient ledger failure (the next tick retries with the same key).
    """
    settings = catalog.compute_sessions
    async with db.transaction() as session:
        row = await session.get(Session, session_id)
        if row is None or row.status != SessionStatus.ACTIVE:
            return False
        assert row.paid_until is not None and row.rate_micros_per_hour is not None
        now = clock.now()
        lead = timedelta(seconds=settings.slice_seconds)
        if due(row, settings).at <= now or row.paid_until - now >= lead:
            return False
        number = 1 + int(
            await session.scalar(
                select(func.max(SessionSlice.number)).where(SessionSlice.session_id == session_id)
            )
            or 0
        )
        key = slice_key(session_id, number)
        earlier = await ledger_reads.find_hold(session, row.customer_id, key)
    start = (row.paid_until - row.started_at) // timedelta(seconds=1)
    end = start + settings.slice_seconds
    if earlier is not None:  # a process died after holding it: its terms, not today's
        end = int(earlier.metadata["ends_seconds"])
    amount = slice_micros(start, end, row.rate_micros_per_hour)
    hold: HoldView | None = None
    if amount > 0:
        try:
            hold = await ledger.hold(
                row.customer_id,
                amount,
                idempotency_key=key,
                currency=row.currency,
                expires_at=row.started_at + timedelta(seconds=end + HOLD_GRACE_SECONDS),
                metadata={
                    "purpose": SLICE_PURPOSE,
                    "session_id": session_id,
                    "slice": number,
                    "starts_seconds": start,
                    "ends_seconds": end,
                },
            )
        except InsufficientCredit:
            async with db.transaction() as session:
                await end_metered(
                    session, session_id, EndReason.CREDIT, settings=settings, clock=clock
                )
            await settle(db, ledger, session_id, clock=clock)
            return None
    if hold is not None and hold.status != HoldStatus.OPEN.value:
        log.error("session %s: slice %d's hold %s is %s", session_id, number, hold.id, hold.status)
        return False
    outcome = await _record(db, row, number, start, end, hold, clock=clock)
    if outcome == "stale" and hold is not None:
        await ledger.void(hold.id, customer_id=row.customer_id)
    if outcome == "added" and hold is not None and not hold.replayed:
        await warn_low_credit(db, session_id, settings=settings, clock=clock)
    return outcome == "added"


async def _record(
    db: Database,
    row: Session,
    number: int,
    start: int,
    end: int,
    hold: HoldView | None,
    *,
    clock: Clock,
) -> Literal["added", "taken", "stale"]:
    """Write slice `number` and move `paid_until` to its end if the session still runs and
    its paid time still ends where the slice starts (a conditional update: two processes
    never record two slices for one stretch): `added`. Otherwise `taken` when a slice row
    already has the hold (another process recorded it), else `stale` (the session ended: the
    caller releases the hold)."""
    paid_until = row.started_at + timedelta(seconds=start)
    ends_at = row.started_at + timedelta(seconds=end)
    async with db.transaction() as session:
        moved = await session.execute(
            update(Session)
            .where(
                Session.id == row.id,
                Session.status == SessionStatus.ACTIVE,
                Session.paid_until == paid_until,
            )
            .values(paid_until=ends_at)
            .execution_options(synchronize_session=False)
        )
        if getattr(moved, "rowcount", 0) == 1:
            session.add(
                SessionSlice(
                    session_id=row.id,
                    number=number,
                    starts_at=paid_until,
                    ends_at=ends_at,
                    amount_micros=hold.amount if hold else 0,
                    hold_id=hold.id if hold else None,
                    created_at=clock.now(),
                )
            )
            return "added"
        if hold is None:
            return "taken"
        holder = await session.scalar(
            select(SessionSlice.number).where(
                SessionSlice.session_id == row.id, SessionSlice.hold_id == hold.id
            )
        )
    return "stale" if holder is None else "taken"
