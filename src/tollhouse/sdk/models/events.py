"""Models of `client.events`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tollhouse.sdk.models._model import Model


class Event(Model):
    """Answered by `GET /v1/events`."""

    id: str
    type: str
    customer_id: str | None
    data: dict[str, Any]
    created_at: datetime


class EventList(Model):
    """Answered by `GET /v1/events`."""

    data: list[Event]
    has_more: bool
    next_cursor: str | None
