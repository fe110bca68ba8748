"""`client.events`: EventsResource and AsyncEventsResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

import builtins

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members
from tollhouse.sdk.models.events import Event, EventList
from tollhouse.sdk.pagination import AsyncPage, Cursor, SyncPage


class EventsResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def list(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        type: builtins.list[str] | None = None,
        customer_id: str | None = None,
    ) -> SyncPage[Event]:
        """Events ascending by id: a customer key sees its own customer's, an operator key every
        event (or one customer's). Page on with `after=next_cursor` while `has_more`.

        `GET /v1/events`

        `after`: the last event id seen: only events after it

        `type`: repeat for several; default: every type

        `customer_id`: operator keys: only this customer's events (default all); customer keys:
        `me` or their own id (always their own events)
        """
        return SyncPage(
            self._requester,
            Call[EventList](
                "GET",
                "/v1/events",
                EventList,
                params=members({"limit": limit}, after=after, type=type, customer_id=customer_id),
                retryable=True,
            ),
            Cursor(param="after", envelope=True),
        )


class AsyncEventsResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    def list(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        type: builtins.list[str] | None = None,
        customer_id: str | None = None,
    ) -> AsyncPage[Event]:
        """Events ascending by id: a customer key sees its own customer's, an operator key every
        event (or one customer's). Page on with `after=next_cursor` while `has_more`.

        `GET /v1/events`

        `after`: the last event id seen: only events after it

        `type`: repeat for several; default: every type

        `customer_id`: operator keys: only this customer's events (default all); customer keys:
        `me` or their own id (always their own events)
        """
        return AsyncPage(
            self._requester,
            Call[EventList](
                "GET",
                "/v1/events",
                EventList,
                params=members({"limit": limit}, after=after, type=type, customer_id=customer_id),
                retryable=True,
            ),
            Cursor(param="after", envelope=True),
        )
