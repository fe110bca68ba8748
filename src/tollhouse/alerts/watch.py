"""Low-credit warnings from memory: each process keeps its customers' thresholds and alert
states, compares the balance every new hold left against them (`observe_hold`, the ledger's
hold listener: gateway calls, `/v1/authorize`, session fees and slices, packs), and moves the
stored state (emitting `credits.low` / `credits.depleted`, see `tollhouse.alerts.service`) in
the background when one crosses, so no caller waits for it. The gateway asks `below` for its
`x-tollhouse-credits-low` header.

A customer's setting is read once and again after `REFRESH_SECONDS` (a percent threshold
follows new grants) or when `invalidate` drops it (its alert was set: `Runtime.
invalidate_customer` reaches every process within 2 s). A customer without an alert costs
one dict lookup per call. When another process moved the state first, the conditional update
here changes nothing and the stored state is read back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from tollhouse.alerts import AlertState
from tollhouse.alerts import service as alerts
from tollhouse.alerts.models import CreditAlert
from tollhouse.clock import Clock
from tollhouse.ledger import HoldView
from tollhouse.singleflight import SingleFlight
from tollhouse.storage import Database

REFRESH_SECONDS = 60.0
"""Longest a customer's threshold is used before it is read again."""

Spawn = Callable[[Coroutine[Any, Any, Any]], object]


@dataclass(slots=True)
class _Watch:
    threshold_micros: int | None
    """None: the customer has no alert."""
    state: AlertState
    loaded_at: float
    moving: bool = False


class CreditWatch:
    """Tells whether a balance is below the customer's threshold, and records crossings.

    `spawn(coro)` runs the crossing's database write in the background (the runtime's).
    """

    def __init__(self, db: Database, *, clock: Clock, spawn: Spawn) -> None:
        self.db = db
        self.clock = clock
        self.spawn = spawn
        self._watches: dict[str, _Watch] = {}
        self._loads: SingleFlight[str, _Watch] = SingleFlight()

    def observe_hold(self, hold: HoldView) -> None:
        """The ledger's hold listener (`Ledger.watch_holds`): `observe` the balance it left."""
        if hold.available_after_micros is not None:
            self.observe(hold.customer_id, hold.available_after_micros)

    def observe(self, customer_id: str, available_micros: int) -> None:
        """Write a crossing of the customer's threshold by `available_micros` (a balance a
        hold left) since the state last seen, in the background. One dict lookup when the
        customer's setting is in memory; else it is read in the background first."""
        watch = self._watches.get(customer_id)
        if watch is None or self._stale(watch):
            self.spawn(self._observe_loaded(customer_id, available_micros))
            return
        self._cross(customer_id, watch, available_micros)

    async def below(self, customer_id: str, available_micros: int) -> bool:
        """Whether `available_micros` is below the customer's threshold (False without one)."""
        watch = self._watches.get(customer_id)
        if watch is None or self._stale(watch):
            watch = await self._load(customer_id)
        if watch.threshold_micros is None:
            return False
        return alerts.state_for(available_micros, watch.threshold_micros) != AlertState.ARMED

    def _stale(self, watch: _Watch) -> bool:
        return self.clock.timestamp() - watch.loaded_at >= REFRESH_SECONDS

    async def _observe_loaded(self, customer_id: str, available_micros: int) -> None:
        self._cross(customer_id, await self._load(customer_id), available_micros)

    def _cross(self, customer_id: str, watch: _Watch, available_micros: int) -> None:
        if watch.threshold_micros is None:
            return
        target = alerts.state_for(available_micros, watch.threshold_micros)
        if target != watch.state and not watch.moving:
            watch.moving = True
            self.spawn(self._move(customer_id, watch, target, available_micros))

    def invalidate(self, customer_id: str) -> None:
        """Read the customer's alert again on its next call."""
        watch = self._watches.get(customer_id)
        if watch is not None:
            watch.loaded_at = -math.inf

    async def _move(
        self, customer_id: str, watch: _Watch, target: AlertState, available_micros: int
    ) -> None:
        try:
            async with self.db.transaction() as session:
                moved = await alerts.cross(
                    session,
                    customer_id,
                    seen=watch.state,
                    to=target,
                    available_micros=available_micros,
                    threshold_micros=watch.threshold_micros or 0,
                    clock=self.clock,
                )
                stored = target if moved else await alerts.stored_state(session, customer_id)
            if stored is not None:
                watch.state = stored
        finally:
            watch.moving = False

    async def _load(self, customer_id: str) -> _Watch:
        return await self._loads.run(customer_id, lambda: self._read(customer_id))

    async def _read(self, customer_id: str) -> _Watch:
        loaded_at = self.clock.timestamp()
        async with self.db.transaction() as session:
            row = await session.get(CreditAlert, customer_id)
            threshold = None if row is None else await alerts.effective_threshold(session, row)
        state = AlertState.ARMED if row is None else AlertState(row.state)
        watch = _Watch(threshold, state, loaded_at)
        self._watches[customer_id] = watch
        return watch
