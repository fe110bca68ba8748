"""Webhooks service: register, change and remove endpoints; read the delivery log; retry.

Functions take the caller's `AsyncSession` and never commit: the request owns the transaction.
Sending is `webhooks.delivery`'s, run by the worker (`webhooks.worker`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.errors import InvalidInput
from tollhouse.ids import ID_LENGTH, new_id
from tollhouse.webhooks import filters
from tollhouse.webhooks.errors import (
    WebhookDeliveryNotFound,
    WebhookEndpointDisabled,
    WebhookEndpointNotFound,
)
from tollhouse.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from tollhouse.webhooks.schemas import CreatedEndpoint, DeliveryPage, DeliveryView, EndpointView
from tollhouse.webhooks.signing import new_secret

MAX_DESCRIPTION = 500
MAX_PAGE = 500
"""Largest `limit` `list_deliveries` accepts."""
DELIVERY_ID_PATTERN = rf"^whd_[0-9A-Za-z]{{{ID_LENGTH}}}$"
"""A delivery id, and so a `before` cursor."""
DISABLED_BY_OPERATOR = "disabled by the operator"

_DELIVERY_ID = re.compile(DELIVERY_ID_PATTERN)


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{loc}: {msg}", errors=[{"loc": loc, "msg": msg}])


def _check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise _invalid("description", f"must be at most {MAX_DESCRIPTION} characters")
    return description


async def _endpoint(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
    row = await session.get(WebhookEndpoint, endpoint_id)
    if row is None:
        raise WebhookEndpointNotFound(
            f"webhook endpoint '{endpoint_id}' not found", endpoint_id=endpoint_id
        )
    return row


async def create_endpoint(
    session: AsyncSession,
    *,
    url: str,
    event_types: Sequence[str] = (filters.ALL,),
    description: str = "",
    clock: Clock,
) -> CreatedEndpoint:
    """Register `url` for `event_types` (see `webhooks.filters`), enabled, with a new
    `whsec_` secret (returned here only). Events created from now on (by the clock, at or
    after its `enabled_at`) are delivered to it; earlier ones never are.

    Raises:
        InvalidInput: a malformed URL, event type filter or a description over 500
            characters.
    """
    now = clock.now()
    secret = new_secret()
    row = WebhookEndpoint(
        id=new_id("whe"),
        url=filters.check_url(url),
        description=_check_description(description),
        event_types=filters.check_event_types(event_types),
        secret=secret,
        enabled=True,
        enabled_at=now,
        disabled_reason=None,
        disabled_at=None,
        failing_since=None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return CreatedEndpoint(EndpointView.of(row), secret)


async def list_endpoints(session: AsyncSession) -> list[EndpointView]:
    """Every endpoint, oldest first (secrets are never shown again)."""
    rows = await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
    return [EndpointView.of(row) for row in rows]


async def get_endpoint(session: AsyncSession, endpoint_id: str) -> EndpointView:
    """One endpoint. Raises WebhookEndpointNotFound."""
    return EndpointView.of(await _endpoint(session, endpoint_id))


async def update_endpoint(
    session: AsyncSession,
    endpoint_id: str,
    *,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    clock: Clock,
) -> EndpointView:
    """Change what is given (None leaves it). Disabling holds its pending deliveries and
    makes none for the events created meanwhile (reason `disabled by the operator`).
    Enabling clears the reason and the failure streak: pending deliveries are due again (at
    once if past due), and the events created from now on are delivered.

    Raises:
        WebhookEndpointNotFound: no such endpoint.
        InvalidInput: a malformed URL, filter or description.
    """
    row = await _endpoint(session, endpoint_id)
    now = clock.now()
    if url is not None:
        row.url = filters.check_url(url)
    if event_types is not None:
        row.event_types = filters.check_event_types(event_types)
    if description is not None:
        row.description = _check_description(description)
    if enabled is True and not row.enabled:
        row.enabled, row.enabled_at, row.failing_since = True, now, None
        row.disabled_reason, row.disabled_at = None, None
    elif enabled is False and row.enabled:
        row.enabled, row.disabled_reason, row.disabled_at = False, DISABLED_BY_OPERATOR, now
    row.updated_at = now
    await session.flush()
    return EndpointView.of(row)


async def delete_endpoint(session: AsyncSession, endpoint_id: str) -> EndpointView:
    """Remove an endpoint with its deliveries and their attempts (an attempt under way
    finishes, and its outcome is not recorded). Answers the endpoint as it was.

    Raises:
        WebhookEndpointNotFound: no such endpoint.
    """
    row = await _endpoint(session, endpoint_id)
    view = EndpointView.of(row)
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    await session.delete(row)
    await session.flush()
    return view


async def _views(session: AsyncSession, rows: Sequence[WebhookDelivery]) -> list[DeliveryView]:
    """`rows` with their attempts, oldest attempt first."""
    attempts: dict[str, list[WebhookAttempt]] = {row.id: [] for row in rows}
    if rows:
        query = (
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.id)
        )
        for attempt in await session.scalars(query):
            attempts[attempt.delivery_id].append(attempt)
    return [DeliveryView.of(row, attempts[row.id]) for row in rows]


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    status: DeliveryStatus | None = None,
    before: str | None = None,
    limit: int = 50,
) -> DeliveryPage:
    """The delivery log: up to `limit` (1..500) deliveries, newest first, each with its
    attempts; only those of `endpoint_id`, of `event_id`, in `status`, and older than the
    delivery `before` (a cursor: the last id of the previous page) when given.

    Raises:
        InvalidInput: `limit` out of range, or `before` not a delivery id.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise _invalid("limit", f"must be between 1 and {MAX_PAGE}")
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit + 1)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if event_id is not None:
        query = query.where(WebhookDelivery.event_id == event_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == DeliveryStatus(status).value)
    if before is not None:
        if not _DELIVERY_ID.match(before):
            raise _invalid("before", "must be a delivery id, whd_ and 22 base62 characters")
        query = query.where(WebhookDelivery.id < before)
    rows = list(await session.scalars(query))
    return DeliveryPage(await _views(session, rows[:limit]), has_more=len(rows) > limit)


async def _delivery(session: AsyncSession, delivery_id: str) -> WebhookDelivery:
    row = await session.get(WebhookDelivery, delivery_id)
    if row is None:
        raise WebhookDeliveryNotFound(
            f"webhook delivery '{delivery_id}' not found", delivery_id=delivery_id
        )
    return row


async def get_delivery(session: AsyncSession, delivery_id: str) -> DeliveryView:
    """One delivery with its attempts. Raises WebhookDeliveryNotFound."""
    return (await _views(session, [await _delivery(session, delivery_id)]))[0]


async def retry_delivery(session: AsyncSession, delivery_id: str, *, clock: Clock) -> DeliveryView:
    """Make a delivery due now, whatever its state (`failed` and `succeeded` ones too): the
    worker sends it at its next pass (within a second in `serve`). The attempt counts like
    any other: if it fails, the schedule goes on from the attempt count (a delivery past
    its last scheduled attempt is `failed` again). An attempt already under way is not
    stopped: its outcome is recorded as usual.

    Raises:
        WebhookDeliveryNotFound: no such delivery.
        WebhookEndpointDisabled: its endpoint is disabled (enable it first).
    """
    row = await _delivery(session, delivery_id)
    endpoint = await _endpoint(session, row.endpoint_id)
    if not endpoint.enabled:
        raise WebhookEndpointDisabled(
            f"webhook endpoint '{endpoint.id}' is disabled ({endpoint.disabled_reason}): "
            "enable it to retry its deliveries",
            endpoint_id=endpoint.id,
            disabled_reason=endpoint.disabled_reason,
        )
    row.status = DeliveryStatus.PENDING.value
    row.next_attempt_at = clock.now()
    row.completed_at = None
    await session.flush()
    return await get_delivery(session, delivery_id)
