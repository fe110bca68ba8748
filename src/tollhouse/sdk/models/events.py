"""Models of `client.events`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tollhouse.sdk.models._model import Model


class Event(Model):
    """Answered by `GET /v1/events`."""

    id: str
    """`evt_...`: unique, and the cursor (`after`) of the next page."""
    type: str
    """Dotted lowercase `domain.verb`: `session.started`, `session.ended`, ..."""
    customer_id: str | None
    """The customer the event is about; null for an operator-wide event."""
    data: dict[str, Any]
    """The event's payload: ids as strings, money as integer micros."""
    created_at: datetime


class EventList(Model):
    """Answered by `GET /v1/events`."""

    data: list[Event]
    """Events ascending by id."""
    has_more: bool
    """More events follow the last of `data` now."""
    next_cursor: str | None
    """The last event's id: pass it as `after` for the next page (or, when `has_more` is false,
    later, for events written since). Null when `data` is empty: keep your cursor.
    """
