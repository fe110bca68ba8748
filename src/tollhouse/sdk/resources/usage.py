"""`client.usage`: UsageResource and AsyncUsageResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members
from tollhouse.sdk.models.usage import EventIn, RecordedEvents, Usage


class UsageResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def query(
        self,
        *,
        customer_id: str | None = None,
        meter: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        window: Literal["hour", "day", "month"] | None = None,
        group_by: Literal["model", "key", "upstream"] | None = None,
        key_id: str | None = None,
    ) -> Usage:
        """Aggregates of usage events in `[start, end)`, per meter, window (UTC) and group.

        `GET /v1/usage`

        `customer_id`: `me`, or any customer for operator keys

        `meter`: repeat for several; default all

        `start`: default: 30 days before end

        `end`: default: now
        """
        return self._requester._request(
            Call[Usage](
                "GET",
                "/v1/usage",
                Usage,
                params=members(
                    {},
                    customer_id=customer_id,
                    meter=meter,
                    start=start,
                    end=end,
                    window=window,
                    group_by=group_by,
                    key_id=key_id,
                ),
                retryable=True,
            )
        )

    def record(self, *, events: list[EventIn]) -> RecordedEvents:
        """Record up to 1,000 usage events; ids already seen count once (idempotent retries).

        A replayed id must carry the same event: one with another meter, value, model, session,
        properties or (when given) `occurred_at` is 422 `idempotency-key-reused`, naming each
        such event and its `fields`, and nothing of the batch is recorded. A `session_id` must
        name a session of the event's customer (422 otherwise).

        503 `metering-unavailable` with `Retry-After` when the database failed the write:
        nothing of the batch was recorded; send it again, same ids.

        `POST /v1/usage/events`
        """
        return self._requester._request(
            Call[RecordedEvents](
                "POST",
                "/v1/usage/events",
                RecordedEvents,
                json=members({"events": events}),
                retryable=True,
            )
        )


class AsyncUsageResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def query(
        self,
        *,
        customer_id: str | None = None,
        meter: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        window: Literal["hour", "day", "month"] | None = None,
        group_by: Literal["model", "key", "upstream"] | None = None,
        key_id: str | None = None,
    ) -> Usage:
        """Aggregates of usage events in `[start, end)`, per meter, window (UTC) and group.

        `GET /v1/usage`

        `customer_id`: `me`, or any customer for operator keys

        `meter`: repeat for several; default all

        `start`: default: 30 days before end

        `end`: default: now
        """
        return await self._requester._request(
            Call[Usage](
                "GET",
                "/v1/usage",
                Usage,
                params=members(
                    {},
                    customer_id=customer_id,
                    meter=meter,
                    start=start,
                    end=end,
                    window=window,
                    group_by=group_by,
                    key_id=key_id,
                ),
                retryable=True,
            )
        )

    async def record(self, *, events: list[EventIn]) -> RecordedEvents:
        """Record up to 1,000 usage events; ids already seen count once (idempotent retries).

        A replayed id must carry the same event: one with another meter, value, model, session,
        properties or (when given) `occurred_at` is 422 `idempotency-key-reused`, naming each
        such event and its `fields`, and nothing of the batch is recorded. A `session_id` must
        name a session of the event's customer (422 otherwise).

        503 `metering-unavailable` with `Retry-After` when the database failed the write:
        nothing of the batch was recorded; send it again, same ids.

        `POST /v1/usage/events`
        """
        return await self._requester._request(
            Call[RecordedEvents](
                "POST",
                "/v1/usage/events",
                RecordedEvents,
                json=members({"events": events}),
                retryable=True,
            )
        )
