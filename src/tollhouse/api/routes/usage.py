"""Usage: query aggregates by meter, window and group; record usage events (sidecar)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from tollhouse.api import problems
from tollhouse.api.deps import ME, Reader, RuntimeDep, SessionDep, Writer, customer_of
from tollhouse.api.schemas import RequestBody, ResponseBody, Timestamp
from tollhouse.customers import service as customers
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.metering import UsageEventIn
from tollhouse.metering import service as metering
from tollhouse.server.runtime import Runtime
from tollhouse.sessions import service as sessions

router = APIRouter(prefix="/v1/usage", tags=["usage"], responses=problems.responses(401, 403))

MAX_EVENTS_PER_BATCH = 1000


class BucketOut(ResponseBody):
    meter: str
    window_start: datetime | None
    group: str | None
    value: int


class UsageOut(ResponseBody):
    customer_id: str | None
    start: datetime
    end: datetime
    window: str | None
    group_by: str | None
    buckets: list[BucketOut]


class EventIn(RequestBody):
    id: str = Field(min_length=1, max_length=128)
    """Idempotency: the same id for the same customer counts once."""
    customer_id: str | None = None
    """Operator keys must name the customer; customer keys may omit it."""
    meter: str
    value: int = Field(ge=0, le=2**62)
    occurred_at: Timestamp | None = None
    """Default: when tollhouse receives it."""
    model: str | None = Field(default=None, max_length=128)
    session_id: str | None = Field(default=None, max_length=32)
    """The customer's session the usage happened in (from `POST /v1/authorize`'s answer):
    its `input_tokens` and `output_tokens` count toward the session's token cap."""
    properties: dict[str, Any] = Field(default_factory=dict)


class EventBatch(RequestBody):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


class RecordOut(ResponseBody):
    accepted: int
    """New events stored."""
    duplicates: int
    """Events whose id was already recorded (counted once)."""


@router.get("", responses=problems.responses(404, 422))
async def query_usage(
    principal: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    customer_id: str = Query(default=ME, description="`me`, or any customer for operator keys"),
    meter: list[str] | None = Query(default=None, description="repeat for several; default all"),
    start: Timestamp | None = Query(default=None, description="default: 30 days before end"),
    end: Timestamp | None = Query(default=None, description="default: now"),
    window: Literal["hour", "day", "month"] | None = None,
    group_by: Literal["model", "key", "upstream"] | None = None,
    key_id: str | None = None,
) -> UsageOut:
    """Aggregates of usage events in `[start, end)`, per meter, window (UTC) and group."""
    owner = customer_of(principal, customer_id)
    end = end or runtime.clock.now()
    start = start or end - timedelta(days=30)
    buckets = await metering.query_usage(
        session,
        customer_id=owner,
        meters=runtime.catalog.aggregations(meter),
        start=start,
        end=end,
        window=window,
        group_by=group_by,
        key_id=key_id,
    )
    return UsageOut(
        customer_id=owner,
        start=start,
        end=end,
        window=window,
        group_by=group_by,
        buckets=[
            BucketOut(meter=b.meter, window_start=b.window_start, group=b.group, value=b.value)
            for b in buckets
        ],
    )


@router.post("/events", responses=problems.responses(400, 404, 409, 413, 422, 503))
async def record_events(body: EventBatch, principal: Writer, runtime: RuntimeDep) -> RecordOut:
    """Record up to 1,000 usage events; ids already seen count once (idempotent retries).

    A replayed id must carry the same event: one with another meter, value, model,
    session, properties or (when given) `occurred_at` is 422 `idempotency-key-reused`,
    naming each such event and its `fields`, and nothing of the batch is recorded. A
    `session_id` must name a session of the event's customer (422 otherwise).

    503 `metering-unavailable` with `Retry-After` when the database failed the write:
    nothing of the batch was recorded; send it again, same ids."""
    events = await _events(body, principal.customer_id, runtime)
    timed = {event.id for event in body.events if event.occurred_at is not None}
    async with runtime.db.transaction() as session:
        conflicting = await metering.conflicts(session, events, timed=timed)
    if conflicting:
        raise IdempotencyKeyReused(
            f"{len(conflicting)} event ids were recorded with other fields; nothing was recorded",
            fields=sorted({name for item in conflicting for name in item["fields"]}),
            events=conflicting,
        )
    result = await runtime.recorder.record(events)
    for customer_id in {event.customer_id for event in events}:
        runtime.quotas.invalidate(customer_id)
    for customer_id in {event.customer_id for event in events if event.session_id}:
        runtime.sessions.invalidate(customer_id)
    return RecordOut(accepted=result.accepted, duplicates=result.duplicates)


async def _events(body: EventBatch, own: str | None, runtime: Runtime) -> list[UsageEventIn]:
    errors: list[dict[str, str]] = []
    wanted: set[str] = set()
    for index, event in enumerate(body.events):
        if own is None and event.customer_id is None:
            errors.append(
                {"loc": f"events.{index}.customer_id", "msg": "required with an operator key"}
            )
        elif own is not None and event.customer_id not in (None, own, ME):
            errors.append({"loc": f"events.{index}.customer_id", "msg": "not your customer"})
        if event.meter not in runtime.catalog.meters:
            errors.append({"loc": f"events.{index}.meter", "msg": f"unknown meter '{event.meter}'"})
        wanted.add(own or event.customer_id or "")
    if errors:
        raise InvalidInput(f"{len(errors)} invalid events; nothing was recorded", errors=errors)
    in_sessions = {
        (own or event.customer_id or "", event.session_id): index
        for index, event in enumerate(body.events)
        if event.session_id is not None
    }
    async with runtime.db.transaction() as session:
        for customer_id in wanted:
            await customers.get(session, customer_id)
        unknown = await sessions.not_found(session, in_sessions)
    if unknown:
        raise InvalidInput(
            f"{len(unknown)} events name no session of their customer; nothing was recorded",
            errors=[
                {"loc": f"events.{in_sessions[pair]}.session_id", "msg": f"no session {pair[1]!r}"}
                for pair in sorted(unknown)
            ],
        )
    now = runtime.clock.now()
    try:
        return [
            UsageEventIn(
                id=event.id,
                customer_id=own or event.customer_id or "",
                meter=event.meter,
                value=event.value,
                occurred_at=event.occurred_at or now,
                model=event.model,
                session_id=event.session_id,
                properties=event.properties,
            )
            for event in body.events
        ]
    except ValueError as exc:
        raise InvalidInput(
            f"invalid event: {exc}", errors=[{"loc": "events", "msg": str(exc)}]
        ) from None
