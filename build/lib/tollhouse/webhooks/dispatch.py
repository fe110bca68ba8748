"""The dispatcher: reads the events outbox and makes one delivery row per (endpoint, event).

Exactly once in intent: `webhook_deliveries` is unique on (endpoint_id, event_id) and rows are
inserted with ON CONFLICT DO NOTHING, so a pass that reads an event again, in this process or
another, adds nothing.

Nothing missed: event ids increase within a process, but a transaction that commits late
(a slow one, or another process's) makes an event appear below ids a reader already passed
(`tollhouse.events`). So each pass reads

1. forward: up to `PAGE` events above the cursor (the highest id read so far, kept in
   `webhook_cursors`), ascending, and moves the cursor to the last;
2. back: the events from `LOOKBACK_SECONDS` (60 s) before the cursor up to it, in case one
   committed there since; those this dispatcher already handled are skipped before any
   write (a process-local memo, dropped when the enabled endpoints change; another process
   finds them again harmlessly).

An id's first symbols are its creation time in Unix milliseconds (`tollhouse.ids`), so "60 s
before the cursor" is the id range from `evt_` + those symbols of (cursor time - 60 s). An
event whose transaction commits more than a minute after it was emitted, or is emitted on a
host whose clock lags the cursor's by more than that, may be missed. The same symbols of the
oldest enabled endpoint's id bound the reading from below (an endpoint takes no event
created before it), so a cursor left behind while no endpoint was enabled costs one catch-up
scan of `PAGE` events a pass, not deliveries.

An event goes to each enabled endpoint whose filters take its type and whose `enabled_at`
is at or before the event's `created_at`. A new delivery is due at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.events import Event
from tollhouse.ids import BASE62, RANDOM_SYMBOLS, TIME_SYMBOLS, base62, new_id
from tollhouse.storage import Database
from tollhouse.webhooks import filters
from tollhouse.webhooks.models import (
    DeliveryStatus,
    WebhookCursor,
    WebhookDelivery,
    WebhookEndpoint,
)

LOOKBACK_SECONDS = 60
"""How far below the cursor each pass reads again, in seconds of id time."""
PAGE = 500
"""Most events one pass reads above the cursor; a full page means more are waiting."""
CURSOR = "outbox"
"""The `webhook_cursors` row of the dispatcher."""


def id_millis(public_id: str) -> int:
    """The Unix milliseconds an id (`evt_...`, `whe_...`) was made at: its first symbols."""
    value = 0
    for symbol in public_id.partition("_")[2][:TIME_SYMBOLS]:
        value = value * 62 + BASE62.index(symbol)
    return value


def event_id_floor(millis: int) -> str:
    """The lowest event id made at `millis` or later (its random symbols all `0`)."""
    return "evt_" + base62(max(millis, 0), TIME_SYMBOLS) + "0" * RANDOM_SYMBOLS


class Dispatcher:
    """Turns outbox events into delivery rows, one `dispatch()` pass at a time. One per
    process; any number of processes may run one on the same database."""

    def __init__(self, db: Database, *, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.enabled_endpoints: int | None = None
        """How many endpoints were enabled at the last pass (None before the first)."""
        self._handled: set[str] = set()
        """Ids of the events this dispatcher committed deliveries for, within the look-back,
        with the endpoints as `_endpoints` describes them."""
        self._endpoints: frozenset[tuple[Any, ...]] = frozenset()
        """The enabled endpoints of the last pass (id, enabled_at, filters): when they change
        (one registered, enabled, or filtering otherwise), the memo is dropped, so the
        look-back is read whole again for them (an endpoint committed just after a pass read
        an event created after it would otherwise miss it)."""

    async def dispatch(self) -> int:
        """One pass: make the delivery rows of the events not yet handled and move the
        cursor. Returns the events read above the cursor (`PAGE` means more are waiting).

        Raises:
            SQLAlchemyError: the database failed (nothing committed; the next pass redoes it).
        """
        async with self.db.transaction() as session:
            endpoints = list(
                await session.scalars(
                    select(WebhookEndpoint)
                    .where(WebhookEndpoint.enabled)
                    .order_by(WebhookEndpoint.id)  # every process inserts in one order
                )
            )
            self.enabled_endpoints = len(endpoints)
            if not endpoints:
                return 0
            described = frozenset((e.id, e.enabled_at, tuple(e.event_types)) for e in endpoints)
            if described != self._endpoints:
                self._handled, self._endpoints = set(), described
            cursor = await session.scalar(
                select(WebhookCursor.event_id).where(WebhookCursor.name == CURSOR)
            )
            start = min(id_millis(endpoint.id) for endpoint in endpoints)
            if cursor is not None:
                start = max(start, id_millis(cursor))
            floor = event_id_floor(start - LOOKBACK_SECONDS * 1000)
            above = max(cursor or floor, floor)
            back = await _events(session, floor, above) if cursor is not None else []
            forward = await _events(session, above, None)
            fresh = [event for event in back if event.id not in self._handled] + forward
            await _insert_deliveries(session, endpoints, fresh, self.clock.now(), self.db)
            if forward:
                await _advance(session, forward[-1].id, self.clock.now(), self.db)
        self._handled = {i for i in self._handled if i > floor}
        self._handled.update(event.id for event in fresh)
        return len(forward)


class _Read(NamedTuple):
    """What the dispatcher reads of an event."""

    id: str
    type: str
    created_at: datetime


async def _events(session: AsyncSession, above: str, up_to: str | None) -> list[_Read]:
    """The events with `above` < id <= `up_to`, ascending; at most
    `PAGE` of them when `up_to` is None (reading forward)."""
    query = (
        select(Event.id, Event.type, Event.created_at).where(Event.id > above).order_by(Event.id)
    )
    query = query.limit(PAGE) if up_to is None else query.where(Event.id <= up_to)
    return [_Read(*row) for row in await session.execute(query)]


def _insert(db: Database) -> Any:
    return (sqlite.insert if db.is_sqlite else postgresql.insert)(WebhookDelivery)


async def _insert_deliveries(
    session: AsyncSession,
    endpoints: list[WebhookEndpoint],
    events: list[_Read],
    now: datetime,
    db: Database,
) -> None:
    rows = [
        {
            "id": new_id("whd"),
            "endpoint_id": endpoint.id,
            "event_id": event.id,
            "event_type": event.type,
            "status": DeliveryStatus.PENDING.value,
            "attempt_count": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event in events
        for endpoint in endpoints
        if endpoint.enabled_at <= event.created_at
        and filters.matches(endpoint.event_types, event.type)
    ]
    if rows:
        statement = _insert(db).on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
        await session.execute(statement, rows)


async def _advance(session: AsyncSession, event_id: str, now: datetime, db: Database) -> None:
    """Move the cursor up to `event_id` (never down: another process may be ahead)."""
    insert = (sqlite.insert if db.is_sqlite else postgresql.insert)(WebhookCursor)
    await session.execute(
        insert.values(name=CURSOR, event_id=event_id, updated_at=now).on_conflict_do_nothing()
    )
    await session.execute(
        update(WebhookCursor)
        .where(WebhookCursor.name == CURSOR, WebhookCursor.event_id < event_id)
        .values(event_id=event_id, updated_at=now)
    )
