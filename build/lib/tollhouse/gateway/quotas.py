"""Quota enforcement on the hot path: a per-process view of each customer's period usage.

The exact figures come from the usage events of the current billing period
(`subscriptions.service.quota_usage`); this guard loads them once per customer, then keeps them
current with the calls it settles, so a call costs dict arithmetic, not a query. Calls in
flight are *reserved* at admission (their estimate) and replaced by their real usage when they
settle, so concurrent calls in one process can never pass a cap together: the call that would
exceed is refused and the one before is not.

Usage recorded elsewhere (another process, the sidecar's `POST /v1/usage/events`) is picked up
when the view is reloaded, at the latest `refresh_seconds` later; the sidecar route drops the
customer's view at once, so this process reloads the exact figures on the next call. Across several processes a cap can therefore be passed by what the other
processes admitted within one refresh interval (documented trade-off; the usage API always
reports the exact figures).

The first time in a period that a call is refused at a cap, or that settled usage reaches
one, the guard hands a `QuotaReached` to its `on_reached` callback (once per customer, meter
and period in this process; the server records it, and `quota.reached` is emitted once across
processes, see `subscriptions.record_quota_reached`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from tollhouse.catalog import Catalog, Usage
from tollhouse.clock import Clock
from tollhouse.singleflight import SingleFlight
from tollhouse.storage import Database
from tollhouse.subscriptions import QuotaExceeded, SubscriptionNotFound
from tollhouse.subscriptions import service as subscriptions

REFRESH_SECONDS = 10.0
MAX_NOTICED = 4096
"""Caps reached that are remembered before the passed periods' ones are forgotten."""


def quantities(usage: Usage) -> dict[str, int]:
    """The meters a gateway call moves, in their units (audio rounded up to whole seconds)."""
    audio = int(-(-usage.audio_seconds // 1))
    values = {
        "api_calls": usage.requests,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "images": usage.images,
        "characters": usage.characters,
        "audio_seconds": audio,
    }
    return {meter: value for meter, value in values.items() if value}


@dataclass
class _Period:
    """One customer's counters in one billing period (ends at `resets_at`)."""

    plan: str
    resets_at: datetime
    loaded_at: float
    used: dict[str, int]
    reserved: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What an admitted call reserved; hand it back to `settle`."""

    customer_id: str
    resets_at: datetime
    amounts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class QuotaReached:
    """A customer reached a plan's cap on `meter` (in its unit) in the period ending
    `resets_at`: usage got to `limit`, or (`refused`) a call that would pass it was refused."""

    customer_id: str
    meter: str
    limit: int
    used: int
    resets_at: datetime
    refused: bool


class QuotaGuard:
    """Refuses calls that would pass a plan's per-period cap (429 `quota-exceeded`).

    `reserve` before the work; `settle` after it with the real usage (or None to release a
    check-only or failed call); `invalidate` after a plan change or usage recorded elsewhere.
    """

    def __init__(
        self,
        db: Database,
        *,
        catalog: Catalog,
        clock: Clock,
        refresh_seconds: float = REFRESH_SECONDS,
        on_reached: Callable[[QuotaReached], None] | None = None,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.on_reached = on_reached
        self._periods: dict[str, _Period] = {}
        self._reached: set[tuple[str, str, datetime]] = set()
        self._loads: SingleFlight[str, _Period | None] = SingleFlight()

    async def reserve(self, customer_id: str, plan: str, usage: Usage) -> Reservation | None:
        """Check and reserve `usage` against the caps of `plan`.

        Returns None when the plan caps none of the meters this call moves (nothing to track).

        Raises:
            QuotaExceeded: a capped meter would pass its cap (429, `resets_at`,
                `retry_after_seconds` until the period ends).
        """
        caps = self.catalog.plan(plan).quotas
        if not caps:
            return None
        wanted = {m: v for m, v in quantities(usage).items() if m in caps}
        if not wanted:
            return None
        period = await self._period(customer_id, plan)
        if period is None:
            return None
        now = self.clock.now()
        for meter, amount in wanted.items():
            try:
                subscriptions.check_quota(
                    meter=meter,
                    used=period.used.get(meter, 0) + period.reserved.get(meter, 0),
                    requested=amount,
                    limit=caps[meter],
                    resets_at=period.resets_at,
                    now=now,
                )
            except QuotaExceeded:
                self._notice(customer_id, period, meter, caps[meter], refused=True)
                raise
        for meter, amount in wanted.items():
            period.reserved[meter] = period.reserved.get(meter, 0) + amount
        return Reservation(customer_id, period.resets_at, wanted)

    def settle(self, reservation: Reservation | None, usage: Usage | None) -> None:
        """Replace a reservation by the call's real usage (None: the call used nothing)."""
        if reservation is None:
            return
        period = self._periods.get(reservation.customer_id)
        if period is None or period.resets_at != reservation.resets_at:
            return
        for meter, amount in reservation.amounts.items():
            period.reserved[meter] = max(0, period.reserved.get(meter, 0) - amount)
        if usage is None:
            return
        caps = self.catalog.plan(period.plan).quotas
        for meter, amount in quantities(usage).items():
            if meter in reservation.amounts:
                used = period.used[meter] = period.used.get(meter, 0) + amount
                if used >= caps[meter]:
                    self._notice(reservation.customer_id, period, meter, caps[meter])

    def _notice(
        self, customer_id: str, period: _Period, meter: str, limit: int, *, refused: bool = False
    ) -> None:
        """Hand the first reaching of a cap in a period to `on_reached`."""
        key = (customer_id, meter, period.resets_at)
        if self.on_reached is None or key in self._reached:
            return
        if len(self._reached) >= MAX_NOTICED:
            now = self.clock.now()
            self._reached = {k for k in self._reached if k[2] > now}
        self._reached.add(key)
        used = period.used.get(meter, 0)
        self.on_reached(
            QuotaReached(customer_id, meter, limit, used, period.resets_at, refused=refused)
        )

    def invalidate(self, customer_id: str) -> None:
        """Forget a customer's view; the next call reloads it from the usage events."""
        self._periods.pop(customer_id, None)

    async def _period(self, customer_id: str, plan: str) -> _Period | None:
        period = self._periods.get(customer_id)
        now = self.clock.now()
        if (
            period is not None
            and period.plan == plan
            and period.resets_at > now
            and self.clock.timestamp() - period.loaded_at < self.refresh_seconds
        ):
            return period
        return await self._loads.run(
            customer_id, lambda: self._load(customer_id, plan, previous=period)
        )

    async def _load(
        self, customer_id: str, plan: str, *, previous: _Period | None
    ) -> _Period | None:
        async with self.db.transaction() as session:
            try:
                statuses = await subscriptions.quota_usage(
                    session, customer_id, catalog=self.catalog, clock=self.clock
                )
            except SubscriptionNotFound:
                return None
        if not statuses:
            return None
        resets_at = statuses[0].resets_at
        reserved = previous.reserved if previous and previous.resets_at == resets_at else {}
        period = _Period(
            plan=plan,
            resets_at=resets_at,
            loaded_at=self.clock.timestamp(),
            used={s.meter: s.used for s in statuses},
            reserved=dict(reserved),
        )
        self._periods[customer_id] = period
        return period
