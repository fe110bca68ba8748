"""The denial log: calls refused with 402, 403 or 429 (rate limit, quota, credits, session,
plan), one row each, for the dashboard's "recent denials" and "hits by plan".

A denial is noted in memory on the refused call (`DenialLog.note`: an append, no I/O) and
written in the background, many per transaction, like usage events' group commit: no
timer, a lone denial is written at once. The log is analytics, not money: the buffer holds
at most `capacity` denials and drops (and counts) the rest under a flood, and what a
crashed process had not written yet is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.metering.models import Denial
from tollhouse.storage import Database

log = logging.getLogger(__name__)

DENIED_STATUSES = frozenset({402, 403, 429})
"""The statuses of a refusal the log keeps: payment (credits, session), permission (plan,
model, scope) and limits (rate, quota, in-flight)."""


@dataclass(frozen=True, slots=True)
class DenialView:
    """A denial as pages show it."""

    reason: str
    model: str | None
    route: str
    key_id: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class DenialCount:
    """How many calls of customers on `plan` were refused for `reason` in a range."""

    plan: str
    reason: str
    count: int


class DenialLog:
    """Notes refused calls and writes them in the background (`spawn`: the runtime's, so
    `drain` waits for the writes).

    `capacity` bounds the denials waiting to be written; beyond it a denial is dropped and
    counted in `dropped` (and told to the `watch_drops` listeners, as are the denials of a
    write that failed)."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        capacity: int = 10_000,
    ) -> None:
        self._db = db
        self._clock = clock
        self._spawn = spawn
        self._capacity = capacity
        self._waiting: deque[dict[str, Any]] = deque()
        self._writing = False
        self.dropped = 0
        self._drop_listeners: tuple[Callable[[int], None], ...] = ()

    def watch_drops(self, listener: Callable[[int], None]) -> None:
        """Call `listener(denials)` whenever denials are dropped (quick, never raising)."""
        self._drop_listeners = (*self._drop_listeners, listener)

    def _drop(self, denials: int) -> None:
        self.dropped += denials
        for listener in self._drop_listeners:
            listener(denials)

    def note(
        self,
        *,
        customer_id: str,
        key_id: str | None,
        plan: str,
        reason: str,
        model: str | None,
        route: str,
    ) -> None:
        """Keep one refused call (no I/O here); the write follows in the background."""
        if len(self._waiting) >= self._capacity:
            self._drop(1)
            return
        self._waiting.append(
            {"customer_id": customer_id, "key_id": key_id, "plan": plan, "reason": reason,
             "model": model and model[:128], "route": route[:64], "occurred_at": self._clock.now()}
        )  # fmt: skip
        if not self._writing:
            self._writing = True
            self._spawn(self._write())

    async def _write(self) -> None:
        try:
            while self._waiting:
                rows = list(self._waiting)
                self._waiting.clear()
                try:
                    async with self._db.transaction() as session:
                        await session.execute(insert(Denial), rows)
                except Exception:
                    self._drop(len(rows))
                    log.exception("writing %d denials failed: dropped", len(rows))
                await asyncio.sleep(0)
        finally:
            self._writing = False


async def recent(session: AsyncSession, customer_id: str, *, limit: int = 20) -> list[DenialView]:
    """A customer's latest `limit` denials, newest first."""
    rows = await session.scalars(
        select(Denial)
        .where(Denial.customer_id == customer_id)
        .order_by(Denial.occurred_at.desc(), Denial.id.desc())
        .limit(limit)
    )
    return [DenialView(r.reason, r.model, r.route, r.key_id, r.occurred_at) for r in rows]


async def counts_by_plan(
    session: AsyncSession, *, start: datetime, end: datetime
) -> list[DenialCount]:
    """Denials of every customer in `[start, end)`, counted by plan and reason, most first."""
    count = func.count().label("n")
    rows = await session.execute(
        select(Denial.plan, Denial.reason, count)
        .where(Denial.occurred_at >= start, Denial.occurred_at < end)
        .group_by(Denial.plan, Denial.reason)
        .order_by(count.desc(), Denial.plan, Denial.reason)
    )
    return [DenialCount(plan, reason, n) for plan, reason, n in rows]
