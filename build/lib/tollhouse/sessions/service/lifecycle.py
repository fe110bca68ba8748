"""Read and end sessions: caps ended lazily, `get`, `list_sessions`, `terminate`.

Functions take the caller's `AsyncSession` and never commit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.events import service as events
from tollhouse.metering import service as metering
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


async def end_finished(session: AsyncSession, customer_id: str | None, *, clock: Clock) -> int:
    """End the active sessions of `customer_id` that reached a cap by the clock's now: past
    `expires_at` (ended at `expires_at`, reason `duration`), or with `token_cap` tokens used
    or more (ended now, reason `tokens`; the call that crossed the cap was served). With
    `customer_id` None, everyone's past their duration only (a token cap needs its session's
    usage summed: `list_sessions` ends those of the customers on its page). Each gets its
    `session.ended` event. Returns how many ended."""
    now = clock.now()
    query = select(Session).where(Session.status == SessionStatus.ACTIVE)
    if customer_id is None:
        query = query.where(Session.expires_at <= now)
    else:
        query = query.where(
            Session.customer_id == customer_id,
            or_(Session.expires_at <= now, Session.token_cap.is_not(None)),
        )
    rows = list(await session.scalars(query.with_for_update()))
    capped = [row for row in rows if row.token_cap is not None]
    used = await metering.session_tokens(session, [(r.customer_id, r.id) for r in capped])
    ended = 0
    for row in rows:
        if row.expires_at is not None and row.expires_at <= now:
            row.tokens_used = used.get(row.id, row.tokens_used)
            await _end(session, row, EndReason.DURATION, row.expires_at, clock)
        elif row.token_cap is not None and used[row.id] >= row.token_cap:
            row.tokens_used = used[row.id]
            await _end(session, row, EndReason.TOKENS, now, clock)
        else:
            continue
        ended += 1
    return ended


async def views(session: AsyncSession, rows: Sequence[Session], now: datetime) -> list[SessionView]:
    """The views of `rows` at `now`, the active ones with the tokens their usage events
    count so far (one query)."""
    active = [(row.customer_id, row.id) for row in rows if row.status == SessionStatus.ACTIVE]
    used = await metering.session_tokens(session, active)
    return [SessionView.of(row, now, tokens_used=used.get(row.id)) for row in rows]


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


async def not_found(
    session: AsyncSession, pairs: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The `(customer_id, session_id)` pairs that name no session of that customer."""
    if not pairs:
        return set()
    ids = {session_id for _, session_id in pairs}
    rows = await session.execute(select(Session.customer_id, Session.id).where(Session.id.in_(ids)))
    found = {(customer_id, session_id) for customer_id, session_id in rows}
    return {pair for pair in pairs if pair not in found}


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
    if await end_finished(session, row.customer_id, clock=clock):
        await session.refresh(row)
    return (await views(session, [row], now))[0]


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
    await end_finished(session, customer_id, clock=clock)
    query = select(Session).order_by(Session.started_at.desc(), Session.id.desc()).limit(limit)
    if customer_id is not None:
        query = query.where(Session.customer_id == customer_id)
    if status is not None:
        query = query.where(Session.status == status)
    page = await views(session, list(await session.scalars(query)), now)
    spent = {v.customer_id for v in page if v.status == SessionStatus.ACTIVE and v.tokens_left == 0}
    if not spent:
        return page
    for owner in spent:  # everyone's list: end the token caps its page shows reached
        await end_finished(session, owner, clock=clock)
    return await views(session, list(await session.scalars(query)), now)


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
        row.tokens_used = view.tokens_used
        await _end(session, row, EndReason.TERMINATED, now, clock)
    return SessionView.of(row, now)
