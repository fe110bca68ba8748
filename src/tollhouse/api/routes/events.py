"""`GET /v1/events`: the events outbox, ascending by id, paged by cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from tollhouse.api import problems
from tollhouse.api.deps import ME, Reader, SessionDep, customer_of
from tollhouse.api.schemas import ResponseBody
from tollhouse.events import EventView
from tollhouse.events import service as events

router = APIRouter(prefix="/v1/events", tags=["events"], responses=problems.responses(401, 403))

EventType = Annotated[str, Field(pattern=events.TYPE_PATTERN, max_length=events.MAX_TYPE_LENGTH)]


class EventOut(ResponseBody):
    id: str
    """`evt_...`: unique, and the cursor (`after`) of the next page."""
    type: str
    """Dotted lowercase `domain.verb`: `session.started`, `session.ended`, ..."""
    customer_id: str | None
    """The customer the event is about; null for an operator-wide event."""
    data: dict[str, Any]
    """The event's payload: ids as strings, money as integer micros."""
    created_at: datetime

    @classmethod
    def of(cls, event: EventView) -> EventOut:
        return cls(
            id=event.id,
            type=event.type,
            customer_id=event.customer_id,
            data=event.data,
            created_at=event.created_at,
        )


class EventList(ResponseBody):
    data: list[EventOut]
    """Events ascending by id."""
    has_more: bool
    """More events follow the last of `data` now."""
    next_cursor: str | None
    """The last event's id: pass it as `after` for the next page (or, when `has_more` is
    false, later, for events written since). Null when `data` is empty: keep your cursor."""


@router.get("", responses=problems.responses(404, 422))
async def list_events(
    principal: Reader,
    session: SessionDep,
    after: str | None = Query(
        default=None,
        pattern=events.EVENT_ID_PATTERN,
        description="the last event id seen: only events after it",
    ),
    limit: int = Query(default=100, ge=1, le=events.MAX_PAGE),
    types: list[EventType] | None = Query(
        default=None,
        alias="type",
        min_length=1,
        max_length=events.MAX_TYPES,
        description="repeat for several; default: every type",
    ),
    customer_id: str | None = Query(
        default=None,
        max_length=64,
        description="operator keys: only this customer's events (default all); "
        "customer keys: `me` or their own id (always their own events)",
    ),
) -> EventList:
    """Events ascending by id: a customer key sees its own customer's, an operator key
    every event (or one customer's). Page on with `after=next_cursor` while `has_more`."""
    owner = None
    if customer_id is not None or not principal.is_operator:
        owner = customer_of(principal, customer_id or ME)
    page = await events.list_events(
        session, customer_id=owner, after=after, limit=limit, types=types
    )
    return EventList(
        data=[EventOut.of(event) for event in page.events],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )
