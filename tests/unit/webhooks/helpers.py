"""Helpers of the webhook tests: register an endpoint, emit an event, run the dispatcher, as
the operator, a producer and `serve` would."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tollhouse.clock import FrozenClock
from tollhouse.events import EventView
from tollhouse.events import service as events
from tollhouse.storage import Database
from tollhouse.webhooks import CreatedEndpoint, Dispatcher
from tollhouse.webhooks import service as webhooks

CUSTOMER = "cus_0000000000000000000001"


async def register(
    db: Database, clock: FrozenClock, url: str, types: Sequence[str] = ("*",)
) -> CreatedEndpoint:
    """A new endpoint for `url` taking `types`."""
    async with db.transaction() as session:
        return await webhooks.create_endpoint(session, url=url, event_types=types, clock=clock)


async def emit(
    db: Database,
    clock: FrozenClock,
    type: str = "session.started",
    *,
    customer_id: str | None = CUSTOMER,
    **data: Any,
) -> EventView:
    """One event in a transaction of its own, as a producer writes it."""
    async with db.transaction() as session:
        return await events.emit(
            session, customer_id=customer_id, type=type, data=data, clock=clock
        )


async def dispatched(db: Database, clock: FrozenClock) -> Dispatcher:
    """A dispatcher (a process's) after one pass."""
    dispatcher = Dispatcher(db, clock=clock)
    await dispatcher.dispatch()
    return dispatcher
