"""End a metered session, then settle its slice holds; `stop` ends a session of either kind.

Ending is one transaction, and the only place a metered session's bill is decided: the
session row goes `active -> ended` by a conditional update (so of a stop, the reaper and a
credit stop racing in several processes, exactly one ends it), with its `ended_at`, reason
and `billed_micros` (`sessions.billing`), each slice's `captured_micros` (the bill split
over the slices, earliest first), the `session.ended` event, and one `compute_seconds` usage
event of the seconds billed (id `session:<id>:compute_seconds`, with the session's id and
`{"resource_tier": ...}`), which the plan's `compute_seconds` quota counts.

Settling then asks the ledger for what the rows say, in slice order: capture each slice
hold at its share (a share of 0 voids it), then void the hold of the next slice number if one
was made but never recorded (a process died between the two), then set `settled_at`. Each
ledger call is idempotent (a capture at the same amount, a void of a released hold, answer
as they are), so settling twice, or in two processes at once, moves the money once. A
process that dies between ending and settling leaves an ended, unsettled session: the
reaper settles it (`sessions.service.reaper`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog, ComputeSessions
from tollhouse.clock import Clock
from tollhouse.events import service as events
from tollhouse.ledger import HoldNotOpen, HoldStatus, Ledger
from tollhouse.ledger.models import holds_table
from tollhouse.metering import CheckedUsageEvent, record_in_transaction
from tollhouse.sessions.billing import allocate, billed_seconds, cost_micros
from tollhouse.sessions.errors import SessionNotFound
from tollhouse.sessions.models import EndReason, Session, SessionKind, SessionSlice, SessionStatus
from tollhouse.sessions.schemas import SessionView
from tollhouse.sessions.service.lifecycle import terminate
from tollhouse.storage import Database

log = logging.getLogger(__name__)

H = holds_table.c

SLICE_HOLD_PREFIX = "session-slice:"
"""The hold key of slice `n` >= 2 of a session: this prefix, the session id, `:n` (slice 1
is the start's hold, keyed by the start's idempotency key)."""


def slice_key(session_id: str, number: int) -> str:
    """The ledger hold key of slice `number` (>= 2) of `session_id`."""
    return f"{SLICE_HOLD_PREFIX}{session_id}:{number}"


@dataclass(frozen=True, slots=True)
class Due:
    """When a running metered session ends by itself, and why."""

    at: datetime
    reason: EndReason


def due(row: Session, settings: ComputeSessions) -> Due:
    """The earlier of the end of its paid time (`lapsed`) and its heartbeat deadline
    (`heartbeat`: `last_heartbeat_at` + the catalog's timeout, when one is set)."""
    assert row.paid_until is not None and row.last_heartbeat_at is not None
    end = Due(row.paid_until, EndReason.LAPSED)
    timeout = settings.heartbeat_timeout_seconds
    if timeout is not None:
        deadline = row.last_heartbeat_at + timedelta(seconds=timeout)
        if deadline < end.at:
            end = Due(deadline, EndReason.HEARTBEAT)
    return end


async def owned(
    session: AsyncSession, session_id: str, customer_id: str | None, *, lock: bool = False
) -> Session:
    """The session row (locked for update when `lock`, on PostgreSQL).

    Raises:
        SessionNotFound: unknown id, or (given `customer_id`) another customer's session.
    """
    row = await session.get(
        Session, session_id, with_for_update=True if lock else None, populate_existing=lock
    )
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise SessionNotFound(f"no session {session_id!r}", session_id=session_id)
    return row


async def slices(session: AsyncSession, session_id: str) -> list[SessionSlice]:
    """The session's slices, in order."""
    return (await slices_of(session, [session_id]))[session_id]


async def slices_of(
    session: AsyncSession, session_ids: Collection[str]
) -> dict[str, list[SessionSlice]]:
    """Each session's slices, in order (an empty list for a session without any)."""
    found: dict[str, list[SessionSlice]] = {session_id: [] for session_id in session_ids}
    if not found:
        return found
    query = select(SessionSlice).where(SessionSlice.session_id.in_(found))
    for piece in await session.scalars(query.order_by(SessionSlice.number)):
        found[piece.session_id].append(piece)
    return found


async def end_metered(
    session: AsyncSession,
    session_id: str,
    reason: EndReason | None,
    *,
    settings: ComputeSessions,
    clock: Clock,
) -> Session | None:
    """End a running metered session now, for `reason`, in the caller's transaction; None
    when it was no longer running (another caller ended it: it bills once), or, with `reason`
    None (the reaper), when it is not due.

    It ends at the clock's now, unless it was already due (`due`): then at that moment, for
    that reason. Never before the end of a slice already captured in full (processes' clocks
    may differ a little), so the bill always covers what was captured.
    """
    row = await session.get(Session, session_id, with_for_update=True, populate_existing=True)
    if row is None or row.kind != SessionKind.METERED or row.status != SessionStatus.ACTIVE:
        return None
    assert row.rate_micros_per_hour is not None
    now = clock.now()
    limit = due(row, settings)
    if limit.at > now and reason is None:
        return None
    at, why = (limit.at, limit.reason) if limit.at <= now or reason is None else (now, reason)
    held = await slices(session, session_id)
    at = max([at, *(s.ends_at for s in held if s.captured_micros is not None)])
    seconds = billed_seconds(row.started_at, at)
    billed = cost_micros(seconds, row.rate_micros_per_hour)
    shares = allocate(billed, [s.amount_micros for s in held])
    ended = await session.execute(
        update(Session)
        .where(Session.id == session_id, Session.status == SessionStatus.ACTIVE)
        .values(
            status=SessionStatus.ENDED,
            ended_at=at,
            end_reason=why,
            billed_micros=billed,
            fee_micros=billed,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(ended, "rowcount", 0) != 1:
        return None
    for piece, share in zip(held, shares, strict=True):
        assert piece.captured_micros in (None, share), "a used-up slice is billed in full"
        piece.captured_micros = share
    await session.refresh(row)
    await record_in_transaction(
        session,
        CheckedUsageEvent(
            id=f"session:{row.id}:compute_seconds",
            customer_id=row.customer_id,
            meter="compute_seconds",
            value=seconds,
            occurred_at=at,
            session_id=row.id,
            properties={"resource_tier": row.resource_tier},
        ),
        recorded_at=now,
    )
    await events.emit(
        session,
        customer_id=row.customer_id,
        type="session.ended",
        data=_ended_data(row),
        clock=clock,
    )
    return row


def _ended_data(row: Session) -> dict[str, Any]:
    assert row.ended_at is not None
    return {
        "session_id": row.id,
        "product": row.product,
        "kind": row.kind,
        "resource_tier": row.resource_tier,
        "reason": row.end_reason,
        "rate_micros_per_hour": row.rate_micros_per_hour,
        "billed_seconds": billed_seconds(row.started_at, row.ended_at),
        "cost_micros": row.billed_micros,
        "ended_at": row.ended_at.isoformat(),
    }


async def settle(db: Database, ledger: Ledger, session_id: str, *, clock: Clock) -> bool:
    """`settle_many` of one session: True when it was settled by this call."""
    return await settle_many(db, ledger, [session_id], clock=clock) == 1


async def settle_many(
    db: Database, ledger: Ledger, session_ids: Collection[str], *, clock: Clock
) -> int:
    """Capture each ended metered session's slice holds at their shares (in slice order; the
    sessions side by side, so the ledger writes their calls together), void the rest and any
    unrecorded next-slice hold, then mark them settled. Returns how many this call settled;
    those not ended, already settled or not metered are left alone. Idempotent; safe in
    several processes at once.

    A slice hold the ledger no longer holds (expired: no process ran for longer than its
    grace, see `metered.HOLD_GRACE_SECONDS`) cannot be captured: that is logged, and the
    session is settled without it. A session whose ledger calls fail otherwise (a transient
    failure) is left unsettled, for a later pass; its failure is logged.
    """
    if not session_ids:
        return 0
    async with db.transaction() as session:
        rows = list(
            await session.scalars(
                select(Session).where(
                    Session.id.in_(session_ids),
                    Session.kind == SessionKind.METERED,
                    Session.status == SessionStatus.ENDED,
                    Session.settled_at.is_(None),
                )
            )
        )
        held = await slices_of(session, [row.id for row in rows])
        orphans = await _open_holds(
            session, {slice_key(row.id, len(held[row.id]) + 1): row.customer_id for row in rows}
        )
    outcomes = await asyncio.gather(
        *(_settle_holds(ledger, row, held[row.id], orphans) for row in rows),
        return_exceptions=True,
    )
    done = []
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            log.error("session %s: settling failed, retried next pass", row.id, exc_info=outcome)
        else:
            done.append(row.id)
    if done:
        async with db.transaction() as session:
            await session.execute(
                update(Session)
                .where(Session.id.in_(done), Session.settled_at.is_(None))
                .values(settled_at=clock.now())
                .execution_options(synchronize_session=False)
            )
    return len(done)


async def _open_holds(session: AsyncSession, keys: dict[str, str]) -> dict[str, str]:
    """Hold key -> id of the open holds made with those keys (key -> customer id)."""
    if not keys:
        return {}
    rows = await session.execute(
        select(H.idempotency_key, H.id).where(
            tuple_(H.customer_id, H.idempotency_key).in_(
                [(customer_id, key) for key, customer_id in keys.items()]
            ),
            H.status == HoldStatus.OPEN.value,
        )
    )
    return {key: hold_id for key, hold_id in rows}


async def _settle_holds(
    ledger: Ledger, row: Session, held: list[SessionSlice], orphans: dict[str, str]
) -> None:
    """The ledger calls that settle one ended session, in slice order."""
    for piece in held:
        if piece.hold_id is None:
            continue
        assert piece.captured_micros is not None
        if piece.captured_micros == 0:
            await ledger.void(piece.hold_id, customer_id=row.customer_id)
            continue
        try:
            await ledger.capture(piece.hold_id, piece.captured_micros, customer_id=row.customer_id)
        except HoldNotOpen as error:
            log.error(
                "session %s slice %d: %d micros not collected (%s)",
                row.id, piece.number, piece.captured_micros, error.detail,
            )  # fmt: skip
    orphan = orphans.get(slice_key(row.id, len(held) + 1))
    if orphan is not None:
        await ledger.void(orphan, customer_id=row.customer_id)


async def stop(
    db: Database,
    ledger: Ledger,
    session_id: str,
    *,
    catalog: Catalog,
    clock: Clock,
    customer_id: str | None = None,
) -> SessionView:
    """End a session now (reason `terminated`) and answer it; an ended one is answered as
    it is. A flat session's fee is not refunded (`terminate`); a metered session is billed
    for its run (`end_metered`) and settled before the answer.

    Raises:
        SessionNotFound: unknown id, or (given `customer_id`) another customer's session.
        LedgerError: a transient ledger failure while settling (the session has ended and
            is billed; the reaper finishes the settlement).
    """
    async with db.transaction() as session:
        row = await owned(session, session_id, customer_id)
        if row.kind != SessionKind.METERED:
            return await terminate(session, session_id, clock=clock, customer_id=customer_id)
        await end_metered(
            session,
            session_id,
            EndReason.TERMINATED,
            settings=catalog.compute_sessions,
            clock=clock,
        )
    await settle(db, ledger, session_id, clock=clock)
    async with db.transaction() as session:
        return SessionView.of(await owned(session, session_id, None), clock.now())
