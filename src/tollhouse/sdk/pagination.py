"""Cursor pagination: a list call returns a page iterator that fetches the next page when the
current one is used up.

```python
for customer in client.customers.list(limit=100):        # every customer, 100 per request
    ...
async for event in client.events.list(type=["session.ended"]):
    ...
```

The control API pages in two shapes (`Cursor` names which):

- an envelope `{"data": [...], "has_more", "next_cursor"}` (`/v1/events`,
  `/v1/webhook-deliveries`): the next page passes `next_cursor` while `has_more`;
- a plain JSON array (`/v1/customers`, `/v1/invoices`, `/v1/payments`, transactions,
  subscription history): the next page passes the last item's `id`; a page shorter than
  `limit` is the last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from tollhouse.sdk._base import AsyncRequester, Call, Requester

T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    """How a list route pages: `param` is the query parameter that takes the cursor;
    `envelope` True for `{data, has_more, next_cursor}`, False for a plain array paged by the
    last item's `id`."""

    param: str
    envelope: bool = False

    def split(self, call: Call[Any], page: Any) -> tuple[list[Any], Call[Any] | None]:
        """The items of `page` and the call for the next page (None: this was the last)."""
        if self.envelope:
            items = list(page.data)
            cursor = page.next_cursor if page.has_more else None
        else:
            items = list(page)
            limit = call.params.get("limit")
            cursor = items[-1].id if items and limit is not None and len(items) >= limit else None
        if cursor is None:
            return items, None
        return items, replace(call, params={**call.params, self.param: cursor})


class SyncPage(Generic[T]):
    """Every item of a list call, fetched a page at a time as it is iterated."""

    def __init__(self, requester: Requester, call: Call[Any], cursor: Cursor) -> None:
        self._requester = requester
        self._call = call
        self._cursor = cursor

    def __iter__(self) -> Iterator[T]:
        call: Call[Any] | None = self._call
        while call is not None:
            items, call = self._cursor.split(call, self._requester._request(call))
            yield from items


class AsyncPage(Generic[T]):
    """Every item of a list call, fetched a page at a time as it is iterated (`async for`)."""

    def __init__(self, requester: AsyncRequester, call: Call[Any], cursor: Cursor) -> None:
        self._requester = requester
        self._call = call
        self._cursor = cursor

    async def __aiter__(self) -> AsyncIterator[T]:
        call: Call[Any] | None = self._call
        while call is not None:
            items, call = self._cursor.split(call, await self._requester._request(call))
            for item in items:
                yield item
