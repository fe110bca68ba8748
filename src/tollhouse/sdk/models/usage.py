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
    """Part of the body of `POST /v1/usage/events`."""

    id: str
    """Idempotency: the same id for the same customer counts once."""
    customer_id: NotRequired[str | None]
    """Operator keys must name the customer; customer keys may omit it."""
    meter: str
    value: int
    occurred_at: NotRequired[datetime | None]
    """Default: when tollhouse receives it."""
    model: NotRequired[str | None]
    session_id: NotRequired[str | None]
    """The customer's session the usage happened in (from `POST /v1/authorize`'s answer): its
    `input_tokens` and `output_tokens` count toward the session's token cap.
    """
    properties: NotRequired[dict[str, Any]]


class RecordedEvents(Model):
    """Answered by `POST /v1/usage/events`."""

    accepted: int
    """New events stored."""
    duplicates: int
    """Events whose id was already recorded (counted once)."""
