"""Metering value objects: the validated incoming event, the event tollhouse builds itself,
recording results, usage buckets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from tollhouse.metering.errors import InvalidUsageEvent

Aggregation = Literal["sum", "count", "max"]
"""How a meter's events fold into one number: SUM(value), COUNT(*) or MAX(value)."""

Window = Literal["hour", "day", "month"]
"""A calendar window in UTC."""

GroupBy = Literal["model", "key", "upstream"]
"""Split usage by the event's `model`, `key_id` or `upstream` column."""

AGGREGATIONS: frozenset[str] = frozenset(get_args(Aggregation))

MAX_VALUE = 2**62
"""Largest accepted event value (in the meter's unit)."""

MAX_PROPERTIES = 16
"""Most properties one event may carry."""

EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
METER_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
REF_PATTERN = r"^[A-Za-z0-9_.:\-]{1,32}$"

PropertyKey = Annotated[str, Field(min_length=1, max_length=64)]
PropertyValue = (
    StrictBool
    | StrictInt
    | Annotated[float, Field(strict=True, allow_inf_nan=False)]
    | Annotated[StrictStr, Field(max_length=1024)]
    | None
)


class UsageEventIn(BaseModel):
    """One usage event as a caller reports it; immutable once built.

    Fields:
        id: the caller's idempotency id, 1..128 chars of `[A-Za-z0-9_.:-]`; the same
            `(customer_id, id)` recorded twice counts once.
        customer_id: the billed customer (`cus_...`), at most 32 chars.
        meter: a catalog meter name, `^[a-z][a-z0-9_]{0,63}$` (existence is checked by the
            recorder's `known_meters`, not here).
        value: a strict int, 0 <= value <= 2**62, in the meter's unit (tokens, images,
            seconds, bytes, calls); floats, bools and numeric strings are rejected.
        occurred_at: timezone-aware (naive is rejected); normalised to UTC.
        key_id / model: optional API key id (<= 32 chars) and model id (<= 128 chars).
        session_id: optional billed session (`ses_...`, <= 32 chars) the usage happened in;
            its tokens count toward the session's token cap.
        upstream: optional catalog upstream (<= 64 chars) that served the call.
        properties: at most 16 entries; keys 1..64 chars; values str (<= 1024 chars), int,
            finite float, bool or null.

    Raises `pydantic.ValidationError` on bad input; `parse_events` turns that into
    `InvalidUsageEvent`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=EVENT_ID_PATTERN)]
    customer_id: Annotated[str, Field(pattern=REF_PATTERN)]
    meter: Annotated[str, Field(pattern=METER_PATTERN)]
    value: Annotated[int, Field(strict=True, ge=0, le=MAX_VALUE)]
    occurred_at: AwareDatetime
    key_id: Annotated[str, Field(pattern=REF_PATTERN)] | None = None
    model: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    session_id: Annotated[str, Field(pattern=REF_PATTERN)] | None = None
    upstream: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    properties: Annotated[dict[PropertyKey, PropertyValue], Field(max_length=MAX_PROPERTIES)] = (
        Field(default_factory=dict)
    )

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CheckedUsageEvent:
    """A usage event that tollhouse builds itself, from values it made or has validated (the
    gateway's settlements): the fields of `UsageEventIn`, within the same bounds, without its
    validation. A plain dataclass: ~0.3 µs to build where pydantic's `model_construct` takes
    ~3 µs, and a gateway call records up to five. A value that may be out of bounds needs a
    `UsageEventIn` instead. `occurred_at` must be timezone-aware UTC.
    """

    id: str
    customer_id: str
    meter: str
    value: int
    occurred_at: datetime
    key_id: str | None = None
    model: str | None = None
    session_id: str | None = None
    upstream: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


RecordableEvent = UsageEventIn | CheckedUsageEvent
"""What `UsageRecorder` records: an event validated on the way in, or one tollhouse built."""


def parse_events(items: Iterable[Mapping[str, Any]], *, loc: str = "events") -> list[UsageEventIn]:
    """Validate raw event mappings (e.g. a parsed JSON body) into `UsageEventIn`s.

    Raises:
        InvalidUsageEvent: any item is invalid; `errors` lists every problem as
            `{"loc": "events.3.value", "msg": "..."}`.
    """
    events: list[UsageEventIn] = []
    errors: list[dict[str, str]] = []
    for index, item in enumerate(items):
        try:
            events.append(UsageEventIn.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                path = ".".join(str(part) for part in (loc, index, *error["loc"]))
                errors.append({"loc": path, "msg": error["msg"]})
    if errors:
        raise InvalidUsageEvent(f"{len(errors)} invalid usage event field(s)", errors=errors)
    return events


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What one `record()` call achieved: `accepted + duplicates == len(events)`.

    `duplicates` counts events whose `(customer_id, id)` was already stored, or appeared
    earlier in the same call or in the same group-commit batch.
    """

    accepted: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class UsageBucket:
    """One aggregated number: `meter` over one window and one group.

    `window_start` is the UTC calendar boundary (None without a window); `group` is the
    model id, key id or upstream (None without grouping, or for events without one); `value` is in
    the meter's unit (a count for `count` meters).
    """

    meter: str
    window_start: datetime | None
    group: str | None
    value: int
