"""Events service: `emit` an event in the caller's transaction, `list_events` in id order.

Functions take the caller's `AsyncSession` and never commit: the change an event describes
and the event itself commit together, or neither does.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import SYSTEM_CLOCK, Clock
from tollhouse.errors import InvalidInput
from tollhouse.events.models import Event
from tollhouse.events.schemas import EventPage, EventView
from tollhouse.ids import BASE62, ID_LENGTH, base62, new_id

EVENT_ID_PATTERN = rf"^evt_[0-9A-Za-z]{{{ID_LENGTH}}}$"
"""An event id, and so a cursor: `evt_` and 22 base62 symbols."""
TYPE_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
"""An event type: dotted lowercase `domain.verb` (`session.started`, `credits.low`)."""
MAX_TYPE_LENGTH = 64
MAX_PAGE = 1000
"""Largest `limit` `list_events` accepts."""
MAX_TYPES = 20
"""Most types one `list_events` filter may name."""

_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_TYPE = re.compile(TYPE_PATTERN)
_PREFIX = "evt_"


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{loc}: {msg}", errors=[{"loc": loc, "msg": msg}])


class _IncreasingIds:
    """Event ids that increase within the process. `new_id` orders ids by millisecond only;
    two events one transaction emits in the same millisecond would otherwise be read in a
    random order. An id not above the last one is replaced by the last one plus one (in
    base62, as a 22-symbol number)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = ""

    def next(self) -> str:
        with self._lock:
            candidate = new_id("evt")
            if candidate <= self._last:
                value = 0
                for symbol in self._last.removeprefix(_PREFIX):
                    value = value * 62 + BASE62.index(symbol)
                candidate = _PREFIX + base62(value + 1, ID_LENGTH)
            self._last = candidate
            return candidate


_ids = _IncreasingIds()


def check_type(loc: str, type: str) -> str:
    """`type` if it is a dotted lowercase `domain.verb` of at most 64 characters.

    Raises:
        InvalidInput: any other string (the error's `loc` is `loc`).
    """
    if len(type) > MAX_TYPE_LENGTH or not _TYPE.match(type):
        raise _invalid(loc, f"{type[:80]!r} is not a dotted lowercase 'domain.verb' event type")
    return type


def _json_object(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as JSON reads it back (tuples become lists): what the row stores and a reader
    gets. Raises InvalidInput for a value JSON cannot hold (NaN, a set, an object)."""
    try:
        copied = json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise _invalid("data", f"must be a JSON object: {error}") from None
    if not isinstance(copied, dict):
        raise _invalid("data", "must be a JSON object")
    return copied


async def emit(
    session: AsyncSession,
    *,
    customer_id: str | None,
    type: str,
    data: dict[str, Any],
    clock: Clock = SYSTEM_CLOCK,
) -> EventView:
    """Add an event to the caller's transaction: it commits with the change it describes,
    or rolls back with it. Nothing is flushed or committed here.

    `customer_id` is the customer the fact is about, None for an operator-wide event;
    `data` a JSON object (ids as strings, money as integer micros), stored as a copy.

    Raises:
        InvalidInput: `type` is not a dotted lowercase `domain.verb` (at most 64
            characters), or `data` is not a JSON object.
    """
    event = Event(
        id=_ids.next(),
        customer_id=customer_id,
        type=check_type("type", type),
        data=_json_object(data),
        created_at=clock.now(),
    )
    session.add(event)
    return EventView.of(event)


async def list_events(
    session: AsyncSession,
    *,
    customer_id: str | None,
    after: str | None = None,
    limit: int = 100,
    types: list[str] | None = None,
) -> EventPage:
    """Up to `limit` (1..1000) events with an id above `after`, ascending by id: the order
    they were emitted in within a process, as a delivery cursor reads them.

    `customer_id` None reads every event (operator-wide ones included), otherwise only that
    customer's. `after` is the last id the reader has seen (any well-formed id; it need not
    name a visible event). `types` (at most 20) keeps only those types.

    Raises:
        InvalidInput: `limit` out of range, `after` not an event id, a malformed type.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise _invalid("limit", f"must be between 1 and {MAX_PAGE}")
    query = select(Event).order_by(Event.id).limit(limit + 1)
    if customer_id is not None:
        query = query.where(Event.customer_id == customer_id)
    if after is not None:
        if not _EVENT_ID.match(after):
            raise _invalid("after", "must be an event id, evt_ and 22 base62 characters")
        query = query.where(Event.id > after)
    if types is not None:
        if not 1 <= len(types) <= MAX_TYPES:
            raise _invalid("type", f"name between 1 and {MAX_TYPES} types")
        query = query.where(Event.type.in_([check_type("type", t) for t in types]))
    rows = list(await session.scalars(query))
    return EventPage([EventView.of(row) for row in rows[:limit]], has_more=len(rows) > limit)


async def recent_events(
    session: AsyncSession, *, customer_id: str, limit: int = 50
) -> list[EventView]:
    """The customer's `limit` (1..1000) latest events, newest first (for people; a delivery
    cursor reads `list_events`).

    Raises:
        InvalidInput: `limit` out of range.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise _invalid("limit", f"must be between 1 and {MAX_PAGE}")
    query = (
        select(Event).where(Event.customer_id == customer_id).order_by(Event.id.desc()).limit(limit)
    )
    return [EventView.of(row) for row in await session.scalars(query)]
