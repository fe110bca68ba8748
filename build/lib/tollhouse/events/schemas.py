"""Events as the service hands them out: `EventView`, and a page of them, `EventPage`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollhouse.events.models import Event


@dataclass(frozen=True)
class EventView:
    """One event, detached from the session. The shape of a Standard Webhooks payload:
    `id` (the webhook id), `type`, `created_at` (its timestamp), `data`; plus the customer."""

    id: str
    """`evt_...`; also the cursor of `list_events`."""
    type: str
    """Dotted lowercase `domain.verb`."""
    customer_id: str | None
    """Null for an operator-wide event."""
    data: dict[str, Any]
    """JSON object: ids as strings, money as integer micros."""
    created_at: datetime
    """UTC."""

    @classmethod
    def of(cls, event: Event) -> EventView:
        return cls(
            id=event.id,
            type=event.type,
            customer_id=event.customer_id,
            data=dict(event.data),
            created_at=event.created_at,
        )


@dataclass(frozen=True)
class EventPage:
    """Up to `limit` events in id order, and whether more follow the last of them."""

    events: list[EventView]
    has_more: bool

    @property
    def next_cursor(self) -> str | None:
        """The id to pass as `after` for the next page: the last event's (None when empty)."""
        return self.events[-1].id if self.events else None
