"""Models of `client.usage`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict

from tollhouse.sdk.models._model import Model


class Bucket(Model):
    """Answered by `GET /v1/usage`."""

    meter: str
    window_start: datetime | None
    group: str | None
    value: int


class Usage(Model):
    """Answered by `GET /v1/usage`."""

    customer_id: str | None
    start: datetime
    end: datetime
    window: str | None
    group_by: str | None
    buckets: list[Bucket]


class EventIn(TypedDict):
    """Answered by `POST /v1/usage/events`."""

    id: str
    customer_id: NotRequired[str | None]
    meter: str
    value: int
    occurred_at: NotRequired[datetime | None]
    model: NotRequired[str | None]
    session_id: NotRequired[str | None]
    properties: NotRequired[dict[str, Any]]


class RecordedEvents(Model):
    """Answered by `POST /v1/usage/events`."""

    accepted: int
    duplicates: int
