"""Webhooks (operator keys only): endpoints to register, change and remove; the delivery log;
manual retry. A customer's key answers 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import ConfigDict, Field

from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep, SessionDep, Writer, require_operator
from tollhouse.api.schemas import RequestBody, ResponseBody
from tollhouse.events import service as events
from tollhouse.webhooks import DeliveryStatus, DeliveryView, EndpointView
from tollhouse.webhooks import filters as webhook_filters
from tollhouse.webhooks import service as webhooks

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=problems.responses(401, 403))

EventFilter = Annotated[
    str, Field(pattern=webhook_filters.FILTER_PATTERN, max_length=events.MAX_TYPE_LENGTH)
]
Url = Annotated[str, Field(min_length=1, max_length=webhook_filters.MAX_URL_LENGTH)]
Description = Annotated[str, Field(max_length=webhooks.MAX_DESCRIPTION)]


class EndpointCreate(RequestBody):
    url: Url
    """Absolute `http://` or `https://` URL deliveries are POSTed to."""
    event_types: list[EventFilter] = Field(
        default=[webhook_filters.ALL], min_length=1, max_length=webhook_filters.MAX_FILTERS
    )
    """What it takes: exact types (`session.ended`), prefixes (`session.*`) or `*` (every
    event, the default)."""
    description: Description = ""


class EndpointUpdate(RequestBody):
    """What to change; members left out (or null) stay as they are."""

    url: Url | None = None
    event_types: list[EventFilter] | None = Field(
        default=None, min_length=1, max_length=webhook_filters.MAX_FILTERS
    )
    description: Description | None = None
    enabled: bool | None = None
    """`false` holds its deliveries; `true` enables it again (also after tollhouse disabled
    it for failing), clearing the reason."""


class EndpointOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    id: str
    """`whe_...`."""
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    enabled_at: datetime
    """Registered or last enabled: the events created from then on are delivered."""
    disabled_reason: str | None
    """Why it is disabled: `disabled by the operator`, or `every attempt failed for 5 days`."""
    disabled_at: datetime | None
    failing_since: datetime | None
    """Its first failed attempt since its last successful one; null while it succeeds."""
    created_at: datetime
    updated_at: datetime


class CreatedEndpointOut(EndpointOut):
    secret: str
    """`whsec_...`, the Standard Webhooks signing secret. Shown only in this response: store
    it now."""


class AttemptOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    """When it was sent: its `webhook-timestamp`."""
    succeeded: bool
    """A 2xx answer."""
    status_code: int | None
    """The HTTP status answered; null without an answer (timeout, connection error)."""
    error: str | None
    """Why it failed: `HTTP 500`, `timeout after 15 s`, `ClientConnectorError: ...`."""
    latency_ms: int
    """Milliseconds from sending to the answer (or the failure)."""
    response_body: str
    """The first 1000 bytes of the answer's body."""


class DeliveryOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    id: str
    """`whd_...`."""
    endpoint_id: str
    event_id: str
    """Also the `webhook-id` header of every attempt."""
    event_type: str
    status: str
    """`pending` (due at `next_attempt_at`), `succeeded` or `failed` (every scheduled attempt
    failed)."""
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[AttemptOut]
    """Every attempt, oldest first."""


class DeliveryList(ResponseBody):
    data: list[DeliveryOut]
    """Deliveries, newest first."""
    has_more: bool
    """Older deliveries follow the last of `data`."""
    next_cursor: str | None
    """The last delivery's id: pass it as `before` for the next (older) page."""


def _endpoint_out(view: EndpointView) -> EndpointOut:
    return EndpointOut.model_validate(view)


def _delivery_out(view: DeliveryView) -> DeliveryOut:
    return DeliveryOut.model_validate(view)


@router.post(
    "/webhook-endpoints",
    status_code=status.HTTP_201_CREATED,
    responses=problems.responses(400, 413, 422),
)
async def create_endpoint(
    body: EndpointCreate, principal: Writer, runtime: RuntimeDep
) -> CreatedEndpointOut:
    """Register an endpoint: 201 with its signing secret, shown this once. The events
    created from now on whose type it takes are POSTed to it, signed per Standard Webhooks
    (`webhook-id`, `webhook-timestamp`, `webhook-signature`)."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        created = await webhooks.create_endpoint(
            session,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            clock=runtime.clock,
        )
    return CreatedEndpointOut(**_endpoint_out(created.endpoint).model_dump(), secret=created.secret)


@router.get("/webhook-endpoints", responses=problems.responses(422))
async def list_endpoints(principal: Reader, session: SessionDep) -> list[EndpointOut]:
    """Every endpoint, oldest first (secrets are never shown again)."""
    require_operator(principal)
    return [_endpoint_out(view) for view in await webhooks.list_endpoints(session)]


@router.get("/webhook-endpoints/{endpoint_id}", responses=problems.responses(404, 422))
async def get_endpoint(endpoint_id: str, principal: Reader, session: SessionDep) -> EndpointOut:
    require_operator(principal)
    return _endpoint_out(await webhooks.get_endpoint(session, endpoint_id))


@router.patch("/webhook-endpoints/{endpoint_id}", responses=problems.responses(400, 404, 413, 422))
async def update_endpoint(
    endpoint_id: str, body: EndpointUpdate, principal: Writer, runtime: RuntimeDep
) -> EndpointOut:
    """Change an endpoint's URL, filters or description; disable it, or enable it again."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        view = await webhooks.update_endpoint(
            session,
            endpoint_id,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            enabled=body.enabled,
            clock=runtime.clock,
        )
    return _endpoint_out(view)


@router.delete("/webhook-endpoints/{endpoint_id}", responses=problems.responses(404, 422))
async def delete_endpoint(endpoint_id: str, principal: Writer, runtime: RuntimeDep) -> EndpointOut:
    """Remove an endpoint, its deliveries and their log; answers it as it was."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        view = await webhooks.delete_endpoint(session, endpoint_id)
    return _endpoint_out(view)


@router.get("/webhook-deliveries", responses=problems.responses(422))
async def list_deliveries(
    principal: Reader,
    session: SessionDep,
    endpoint_id: str | None = Query(default=None, max_length=64),
    event_id: str | None = Query(default=None, pattern=events.EVENT_ID_PATTERN),
    delivery_status: DeliveryStatus | None = Query(default=None, alias="status"),
    before: str | None = Query(
        default=None,
        pattern=webhooks.DELIVERY_ID_PATTERN,
        description="the last delivery id seen: only older deliveries",
    ),
    limit: int = Query(default=50, ge=1, le=webhooks.MAX_PAGE),
) -> DeliveryList:
    """The delivery log, newest first, each delivery with every attempt (time, status or
    error, latency). Page on with `before=next_cursor` while `has_more`."""
    require_operator(principal)
    page = await webhooks.list_deliveries(
        session,
        endpoint_id=endpoint_id,
        event_id=event_id,
        status=delivery_status,
        before=before,
        limit=limit,
    )
    return DeliveryList(
        data=[_delivery_out(view) for view in page.deliveries],
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get("/webhook-deliveries/{delivery_id}", responses=problems.responses(404, 422))
async def get_delivery(delivery_id: str, principal: Reader, session: SessionDep) -> DeliveryOut:
    require_operator(principal)
    return _delivery_out(await webhooks.get_delivery(session, delivery_id))


@router.post("/webhook-deliveries/{delivery_id}/retry", responses=problems.responses(404, 409, 422))
async def retry_delivery(delivery_id: str, principal: Writer, runtime: RuntimeDep) -> DeliveryOut:
    """Send a delivery again now, whatever its status (`failed` ones too): due at once, sent
    within a second by a serving process. 409 `webhook-endpoint-disabled` while its
    endpoint is disabled."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        view = await webhooks.retry_delivery(session, delivery_id, clock=runtime.clock)
    return _delivery_out(view)
