"""Provider events processed once: their id is inserted in the transaction that records the
event's effect, before the effect (so a concurrent delivery of the same event waits on the
unique key, then fails, and rolls its own effect back)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.payments.models import ProcessedProviderEvent


class AlreadyProcessed(Exception):
    """Another delivery of the event recorded its effect first (internal: answered as a
    `duplicate`)."""


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """The identity of one provider event."""

    provider: str
    id: str
    type: str
    created: int
    """When the provider made it (Unix seconds, Stripe's `event.created`)."""


async def is_processed(session: AsyncSession, event: ProviderEvent) -> bool:
    """True when an earlier delivery of `event` recorded its effect."""
    found = await session.scalar(
        select(ProcessedProviderEvent.event_id).where(
            ProcessedProviderEvent.provider == event.provider,
            ProcessedProviderEvent.event_id == event.id,
        )
    )
    return found is not None


async def mark_processed(
    session: AsyncSession, event: ProviderEvent, *, clock: Clock, outcome: str = "processed"
) -> ProcessedProviderEvent:
    """Insert the event's row in the caller's transaction, flushed at once: do it before the
    effect (set the returned row's `outcome` to say what the effect was). Raises
    `sqlalchemy.exc.IntegrityError` when another delivery inserted it first (the caller's
    transaction must then roll back)."""
    row = ProcessedProviderEvent(
        provider=event.provider,
        event_id=event.id,
        type=event.type[:64],
        outcome=outcome[:200],
        processed_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return row
