"""Read and end sessions: duration caps ended lazily, `get`, `list_sessions`, `terminate`.

Functions take the caller's `AsyncSession` and never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.events import service as events
from tollhouse.sessions.errors import SessionActive, SessionNotFound
from tollhouse.sessions.models import EndReason, Session, SessionKind, SessionStatus
from tollhouse.sessions.schemas import SessionView

MAX_PAGE = 500
"""Largest `limit` `list_sessions` accepts."""
MAX_KEY_LENGTH = 128
"""Longest idempotency key a start or a purchase takes."""


def _ended_data(row: Session) -> dict[str, Any]:
    return {
        "session_id": row.id,
        "product": row.product,
        "kind": row.kind,
        "reason": row.end_reason,
        "fee_micros": row.fee_micros,
        "tokens_used": row.tokens_used,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
    }


async def _end(
    session: AsyncSession, row: Session, reason: EndReason, at: datetime, clock: Clock
) -> None:
    """End an active session at `at` and emit `session.ended` in the same transaction."""
    row.status = SessionStatus.ENDED
    row.active_product = None
    row.ended_at = at
    row.end_reason = reason
    await session.flush()
    await events.emit(
        session,
        customer_id=row.customer_id,
        type="session.ended",
        data=_ended_data(row),
        clock=clock,
    )


async def end_expired(session: AsyncSession, customer_id: str | None, *, clock: Clock) -> int:
    """End the active sessions (of `customer_id`, or everyone's when `None`) whose duration
    cap passed by the clock's now: each ends at its `expires_at`, reason `duration`. Returns how many."""
    query = select(Session).where(
        Session.status == SessionStatus.ACTIVE,
        Session.expires_at.is_not(None),
        Session.expires_at <= clock.now(),
    )
    if customer_id is not None:
        query = query.where(Session.customer_id == customer_id)
    rows = list(await session.scalars(query.with_for_update()))
    for row in rows:
        assert row.expires_at is not None
        await _end(session, row, EndReason.DURATION, row.expires_at, clock)
    return len(rows)


def same_start(row: Session, product: str, idempotency_key: str) -> None:
    """Raises `IdempotencyKeyReused` when `row` (started with the key) is of another product."""
    if row.product != product:
        raise IdempotencyKeyReused(
            f"idempotency key {idempotency_key!r} started a session of another product",
            fields=["product"],
            session_id=row.id,
        )


async def by_key(session: AsyncSession, customer_id: str, key: str) -> Session | None:
    """The customer's session started with idempotency key `key`, or None."""
    return await session.scalar(
        select(Session).where(Session.customer_id == customer_id, Session.idempotency_key == key)
    )


async def active_session(session: AsyncSession, customer_id: str, product: str) -> Session | None:
    """The customer's active session of `product`, or None."""
    return await session.scalar(
        select(Session).where(Session.customer_id == customer_id, Session.active_product == product)
    )


async def require_none_active(session: AsyncSession, customer_id: str, product: str) -> None:
    """Raises `SessionActive` when the customer has an active session of `product`."""
    current = await active_session(session, customer_id, product)
    if current is not None:
        raise SessionActive(
            f"a session of {product!r} is active until it ends or is terminated",
            product=product,
            session_id=current.id,
        )


def check_key(key: str) -> str:
    """`key` when it is 1..`MAX_KEY_LENGTH` characters, else `InvalidInput` (loc `idempotency_key`)."""
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise InvalidInput(
            "idempotency_key must be 1..128 characters",
            errors=[{"loc": "idempotency_key", "msg": "must be 1..128 characters"}],
        )
    return key


async def get(
    session: AsyncSession, session_id: str, *, clock: Clock, customer_id: str | None = None
) -> SessionView:
    """One session, as of now (ended first if its duration cap passed).

    Raises:
        SessionNotFound: unknown id, or (given `customer_id`) another customer's session.
    """
    row = await session.get(Session, session_id)
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise SessionNotFound(f"no session {session_id!r}", session_id=session_id)
    now = clock.now()
    if await end_expired(session, row.customer_id, clock=clock):
        await session.refresh(row)
    return SessionView.of(row, now)


async def list_sessions(
    session: AsyncSession,
    *,
    clock: Clock,
    customer_id: str | None = None,
    status: SessionStatus | None = None,
    limit: int = 50,
) -> list[SessionView]:
    """Sessions newest first (of `customer_id`, or everyone's when `None`), at most `limit`
    (1..500), optionally only those with `status`.

    Raises:
        InvalidInput: `limit` out of range.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_PAGE}",
            errors=[{"loc": "limit", "msg": f"must be between 1 and {MAX_PAGE}"}],
        )
    now = clock.now()
    await end_expired(session, customer_id, clock=clock)
    query = select(Session).order_by(Session.started_at.desc(), Session.id.desc()).limit(limit)
    if customer_id is not None:
        query = query.where(Session.customer_id == customer_id)
    if status is not None:
        query = query.where(Session.status == status)
    return [SessionView.of(row, now) for row in await session.scalars(query)]


async def terminate(
    session: AsyncSession, session_id: str, *, clock: Clock, customer_id: str | None = None
) -> SessionView:
    """End a flat session now (reason `terminated`); an ended session is answered as it is.
    The fee is not refunded (a flat session is paid for when it starts). A metered session is
    billed when it ends: end it with `stop`, which has the ledger.

    Raises:
        SessionNotFound: unknown id, or (given `customer_id`) another customer's session.
        ValueError: a running metered session (use `stop`).
    """
    view = await get(session, session_id, clock=clock, customer_id=customer_id)
    if view.kind == SessionKind.METERED and view.status == SessionStatus.ACTIVE:
        raise ValueError("a metered session is ended by sessions.service.stop")
    if view.status == SessionStatus.ENDED:
        return view
    row = await session.get(Session, session_id, with_for_update=True)
    assert row is not None
    now = clock.now()
    if row.status == SessionStatus.ACTIVE:
        await _end(session, row, EndReason.TERMINATED, now, clock)
    return SessionView.of(row, now)
