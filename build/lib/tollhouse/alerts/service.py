"""Set, read and move credit alerts. Functions take the caller's `AsyncSession` and never
commit.

A crossing (`cross`) moves the stored state by a conditional update and, only when that
update took, emits its events in the same transaction:

| from -> to | events |
| --- | --- |
| armed -> low | `credits.low` |
| armed -> depleted | `credits.low`, `credits.depleted` |
| low -> depleted | `credits.depleted` |
| low/depleted -> armed, depleted -> low | none (re-armed: the next downward crossing fires) |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.alerts.models import AlertState, CreditAlert
from tollhouse.clock import Clock
from tollhouse.errors import InvalidInput
from tollhouse.events import service as events
from tollhouse.ledger import service as ledger

_EVENTS = {
    (AlertState.ARMED, AlertState.LOW): ("credits.low",),
    (AlertState.ARMED, AlertState.DEPLETED): ("credits.low", "credits.depleted"),
    (AlertState.LOW, AlertState.DEPLETED): ("credits.depleted",),
}


@dataclass(frozen=True, slots=True)
class AlertView:
    """A customer's alert: its setting, the threshold it means now (micros; for a percent,
    of the latest grant, rounded down; 0 without grants), and its state."""

    customer_id: str
    threshold_micros: int | None
    threshold_percent: int | None
    effective_threshold_micros: int
    state: str
    changed_at: datetime


def state_for(available_micros: int, threshold_micros: int) -> AlertState:
    """`depleted` at or below 0, `low` below the threshold, else `armed`."""
    if available_micros <= 0:
        return AlertState.DEPLETED
    if available_micros < threshold_micros:
        return AlertState.LOW
    return AlertState.ARMED


async def effective_threshold(session: AsyncSession, row: CreditAlert) -> int:
    """The threshold in micros: the set amount, or the percent of the latest grant."""
    return await _threshold(session, row.customer_id, row.threshold_micros, row.threshold_percent)


async def _threshold(
    session: AsyncSession, customer_id: str, micros: int | None, percent: int | None
) -> int:
    """`micros`, or `percent` of the latest grant not revoked (rounded down; 0 without one)."""
    if micros is not None:
        return micros
    grants = await ledger.list_grants(session, customer_id)  # newest first
    latest = next((grant for grant in grants if grant.revoked_at is None), None)
    return 0 if latest is None else latest.amount * (percent or 0) // 100


async def get(session: AsyncSession, customer_id: str) -> AlertView | None:
    """The customer's alert, or None when it has none."""
    row = await session.get(CreditAlert, customer_id)
    return None if row is None else await _view(session, row)


async def set_alert(
    session: AsyncSession,
    customer_id: str,
    *,
    threshold_micros: int | None,
    threshold_percent: int | None,
    available_micros: int,
    clock: Clock,
) -> AlertView | None:
    """Set (or, with both None, remove) the customer's threshold. The state starts from
    `available_micros` now, without events: an alert set below the balance fires at the
    next crossing, not for the past.

    Raises:
        InvalidInput: both given, a negative amount, or a percent outside 1..100.
    """
    if threshold_micros is not None and threshold_percent is not None:
        raise _invalid("threshold_percent", "give threshold_micros or threshold_percent")
    if threshold_micros is not None and threshold_micros < 0:
        raise _invalid("threshold_micros", "must be >= 0")
    if threshold_percent is not None and not 1 <= threshold_percent <= 100:
        raise _invalid("threshold_percent", "must be between 1 and 100")
    row = await session.get(CreditAlert, customer_id, with_for_update=True)
    if threshold_micros is None and threshold_percent is None:
        if row is not None:
            await session.delete(row)
        return None
    threshold = await _threshold(session, customer_id, threshold_micros, threshold_percent)
    if row is None:
        row = CreditAlert(customer_id=customer_id)
        session.add(row)
    row.threshold_micros = threshold_micros
    row.threshold_percent = threshold_percent
    row.state = state_for(available_micros, threshold)
    row.changed_at = clock.now()
    await session.flush()
    return await _view(session, row)


async def cross(
    session: AsyncSession,
    customer_id: str,
    *,
    seen: AlertState,
    to: AlertState,
    available_micros: int,
    threshold_micros: int,
    clock: Clock,
) -> bool:
    """Move the stored state from `seen` to `to` and emit the crossing's events (see the
    module docstring), if the state still is `seen`. Returns whether it moved (False: another
    process moved it first, or the alert is gone)."""
    moved = await session.execute(
        update(CreditAlert)
        .where(CreditAlert.customer_id == customer_id, CreditAlert.state == seen)
        .values(state=to, changed_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0) != 1:
        return False
    for type_ in _EVENTS.get((seen, to), ()):
        await events.emit(
            session,
            customer_id=customer_id,
            type=type_,
            data={"available_micros": available_micros, "threshold_micros": threshold_micros},
            clock=clock,
        )
    return True


async def stored_state(session: AsyncSession, customer_id: str) -> AlertState | None:
    """The stored state, or None when the customer has no alert."""
    state = await session.scalar(
        select(CreditAlert.state).where(CreditAlert.customer_id == customer_id)
    )
    return None if state is None else AlertState(state)


async def _view(session: AsyncSession, row: CreditAlert) -> AlertView:
    return AlertView(
        customer_id=row.customer_id,
        threshold_micros=row.threshold_micros,
        threshold_percent=row.threshold_percent,
        effective_threshold_micros=await effective_threshold(session, row),
        state=row.state,
        changed_at=row.changed_at,
    )


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{loc} {msg}", errors=[{"loc": loc, "msg": msg}])
