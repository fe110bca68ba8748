"""GCRA rate limiting: limits, decisions, the limiter and the HTTP header helper.

GCRA (Generic Cell Rate Algorithm) is the "virtual scheduling" form of the ATM Forum's Traffic
Management Specification 4.0 (1996), as described for APIs in Brandur Leach, "Rate limiting,
cells and GCRA" (2015). It is a token bucket kept as one timestamp per key, the theoretical
arrival time (TAT), so there is nothing to refill and a decision is one read and one write.

For `Limit(amount, period_seconds)`:

    T   = period / amount                 emission interval: one cell of cost 1 every T
    tau = period - T                      burst tolerance, so tau + T = period

    tat      = max(stored TAT, now)       (a new key reads as now)
    new_tat  = tat + cost * T
    allowed  iff new_tat - now <= tau + T (= period)
    on allow: stored TAT := new_tat       (`consume` stores it even when not allowed: debt)

From an empty key, `amount` cost-1 requests pass back-to-back (new_tat - now = amount*T =
period), the next is denied, and one more passes every T afterwards. The reported numbers, with
`ahead = TAT after the decision - now` (>= 0):

    remaining           = max(0, floor((tau + T - ahead) / T))   cost units that would pass now
    reset_after_seconds = ahead            until the key is fully replenished (TAT reaches now)
    retry_after_seconds = max(0, tat + cost*T - (tau + T) - now) for a denied request (the moment
                          its new_tat - now shrinks to the period); 0 when it passed

Units and rounding: backends work in integer microseconds. `cost * T` is computed exactly as
`cost * period_us // amount` (rounded down, so each decision is at most 1 µs generous); a
`cost > amount` can never pass and is refused up front with `RateLimitCostTooLarge` (422)
instead of being answered with an infinite retry time. `remaining` is computed in integers:
`(period_us - ahead_us) * amount // period_us`.

`hit_all` decides several (limit, key, cost) at once, all-or-nothing, in one storage call (one
Redis round trip): the gateway checks requests-per-minute and tokens-per-minute together, and a
denial by either consumes from neither. Each window also reports its effective window, the
seconds within which no more than `remaining` units pass (until the next unit is freed):

    effective_window = 0                                          when remaining = amount
                     = ahead - period + ceil((remaining + 1) * T)  otherwise (> 0)

`fields.headers` turns the windows into HTTP header fields (the IETF draft's `RateLimit-Policy`
and `RateLimit`, and the older `RateLimit-Limit`/`-Remaining`/`-Reset`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from tollhouse.ratelimit.errors import RateLimitCostTooLarge, RateLimited
from tollhouse.ratelimit.fields import (
    headers,
    most_restrictive,
    policy_item,
    retry_after_header_seconds,
    sf_string,
)
from tollhouse.ratelimit.storage import Cell, Mode, Storage

_US_PER_SECOND = 1_000_000


@dataclass(frozen=True, slots=True)
class Limit:
    """`amount` cost units per `period_seconds`, GCRA-shaped (a burst of `amount`, then steady).

    `name` identifies the limit in the `RateLimit-Policy` and `RateLimit` header fields
    (printable ASCII; default `str(limit)`, e.g. "60/60s"); the windows of one decision should
    have distinct names.

    Raises:
        ValueError: amount < 1 or not an int; period not a finite number > 0 (or < 1 µs); a name
            with characters outside printable ASCII.
    """

    amount: int
    period_seconds: float
    name: str = ""
    period_us: int = field(init=False, repr=False, compare=False)
    """The period in whole microseconds (= tau + T), what backends use."""
    sf_name: str = field(init=False, repr=False, compare=False)
    """`name` as a structured-field String, built once (headers are built on every call)."""
    policy_item: str = field(init=False, repr=False, compare=False)
    """This limit's `RateLimit-Policy` item, built once (`fields.policy_item`)."""

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 1:
            raise ValueError(f"Limit amount must be an int >= 1, got {self.amount!r}")
        period = float(self.period_seconds)
        if not math.isfinite(period) or period <= 0:
            raise ValueError(f"Limit period must be > 0 seconds, got {self.period_seconds!r}")
        period_us = round(period * _US_PER_SECOND)
        if period_us < 1:
            raise ValueError(f"Limit period must be at least 1 µs, got {self.period_seconds!r}")
        object.__setattr__(self, "period_us", period_us)
        name = self.name or str(self)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "sf_name", sf_string(name))
        object.__setattr__(self, "policy_item", policy_item(name, self.amount, period_us))

    @classmethod
    def per_second(cls, amount: int, name: str = "") -> Limit:
        return cls(amount, 1.0, name)

    @classmethod
    def per_minute(cls, amount: int, name: str = "") -> Limit:
        return cls(amount, 60.0, name)

    @classmethod
    def per_hour(cls, amount: int, name: str = "") -> Limit:
        return cls(amount, 3600.0, name)

    @classmethod
    def per_day(cls, amount: int, name: str = "") -> Limit:
        return cls(amount, 86400.0, name)

    @property
    def emission_interval_seconds(self) -> float:
        """T = period / amount."""
        return self.period_seconds / self.amount

    @property
    def tolerance_seconds(self) -> float:
        """tau = period - T: how far ahead of schedule the TAT may run."""
        return self.period_seconds - self.emission_interval_seconds

    def increment_us(self, cost: int) -> int:
        """cost * T in whole microseconds, rounded toward zero (exact integer arithmetic): a
        refund of `cost` (negative) moves back exactly what taking `cost` moved forward."""
        if cost < 0:
            return -(-cost * self.period_us // self.amount)
        return cost * self.period_us // self.amount

    def __str__(self) -> str:
        return f"{self.amount}/{self.period_seconds:g}s"


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One limit's state after a decision (see the module docstring for the formulas)."""

    limit: int
    """The limit's `amount` (cost units per period)."""
    remaining: int
    """Cost units that would pass right now, >= 0."""
    reset_after_seconds: float
    """Seconds until the window is fully replenished (0 for an untouched key)."""
    retry_after_seconds: float
    """Seconds until this request would pass; 0 when it passed (or would, for `test`)."""
    policy: Limit | None = field(default=None, kw_only=True)
    """The limit this window measures (None for windows built by hand)."""
    effective_window_seconds: float = field(default=0.0, kw_only=True)
    """Seconds within which no more than `remaining` units pass (until the next unit is
    freed); 0 when the window is full."""


@dataclass(frozen=True, slots=True)
class HitResult(WindowStats):
    """`WindowStats` of a single-limit `hit`/`test`, plus whether it passed."""

    allowed: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of `hit_all`/`test_all`: `stats` in the order of the requests."""

    allowed: bool
    stats: list[WindowStats]

    @property
    def retry_after_seconds(self) -> float:
        """Max over the windows: 0 when allowed."""
        return max((s.retry_after_seconds for s in self.stats), default=0.0)

    def headers(self) -> dict[str, str]:
        """`headers(self.stats)`."""
        return headers(self.stats)

    def raise_if_denied(self, detail: str | None = None) -> None:
        """Raise `RateLimited` (429) with the most restrictive window's numbers if denied."""
        if self.allowed:
            return
        window = most_restrictive(self.stats)
        retry = retry_after_header_seconds(self.retry_after_seconds)
        raise RateLimited(
            detail or f"Rate limit of {window.limit} exceeded; retry after {retry} s.",
            headers=self.headers(),
            retry_after_seconds=retry,
            limit=window.limit,
            remaining=window.remaining,
            reset_seconds=math.ceil(window.reset_after_seconds),
        )


Request = tuple[Limit, str, int]
"""(limit, key, cost) of `hit_all`; keys of one call must be distinct."""


def key_for(*identifiers: str) -> str:
    """The storage key of `hit(limit, *identifiers)`: the identifiers joined by "/"."""
    if not identifiers or any(not part for part in identifiers):
        raise ValueError("rate-limit identifiers must be non-empty strings")
    return "/".join(identifiers)


class _Debt:
    """Costs queued by `consume` and `refund` (negative) for one (limit, key), and the callers
    waiting for them."""

    __slots__ = ("cost", "waiters")

    def __init__(self) -> None:
        self.cost = 0
        self.waiters: list[asyncio.Future[WindowStats]] = []

    def settle(self, outcome: WindowStats | BaseException) -> None:
        for waiter in self.waiters:
            if waiter.done():
                continue
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)


class RateLimiter:
    """GCRA over a `Storage` (`storage_from_url("memory://" | "redis://...")`).

    All methods may raise `RateLimitStorageError` (503) when the backend fails (for a Redis
    URL: while it is down under the fail-closed policy, see `storage.failover`).
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._debts: dict[tuple[Limit, str], _Debt] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def hit_all(self, requests: Sequence[Request]) -> Decision:
        """Consume every request's cost if all fit, none otherwise; one storage round trip.

        Raises:
            RateLimitCostTooLarge: some cost > its limit's amount (nothing consumed).
            ValueError: a negative cost, an empty or repeated key.
        """
        return await self._decide(requests, "hit")

    async def test_all(self, requests: Sequence[Request]) -> Decision:
        """What `hit_all` would answer, consuming nothing."""
        return await self._decide(requests, "test")

    async def hit(self, limit: Limit, *identifiers: str, cost: int = 1) -> HitResult:
        """`hit_all` of one limit; the key is `key_for(*identifiers)`."""
        decision = await self._decide([(limit, key_for(*identifiers), cost)], "hit")
        return _with_allowed(decision)

    async def test(self, limit: Limit, *identifiers: str, cost: int = 1) -> HitResult:
        """Would `hit` pass? Consumes nothing."""
        decision = await self._decide([(limit, key_for(*identifiers), cost)], "test")
        return _with_allowed(decision)

    async def consume(self, limit: Limit, key: str, cost: int) -> WindowStats:
        """Add `cost` unconditionally (may exceed `amount`): later requests wait off the debt.

        Used after a response to charge the actual tokens. Returns the key's state afterwards
        (`retry_after_seconds` is 0: the cost was taken).

        Concurrent calls share storage round trips, like a group commit: while one round is
        being written, new costs queue up, and the next round takes them all in one call
        (costs for the same limit and key are added up: GCRA takes `a + b` at one instant
        exactly as `a` then `b`). Each caller gets its key's state after its round. A queued
        cost is taken even if its caller is cancelled.

        Raises:
            ValueError: a negative cost or an empty key.
        """
        _check_cost(cost)
        return await self._force(limit, key, cost)

    async def refund(self, limit: Limit, key: str, cost: int) -> WindowStats:
        """Give back `cost` units that a `hit` or `consume` took: a call refused after its
        decision, or one that used less than it reserved. The key's TAT moves back by what
        taking `cost` moved it forward, never before now (a key back at now reads as unused).
        Batched with `consume` (a refund and a debt of one key cancel out in one round).

        Raises:
            ValueError: a negative cost or an empty key.
        """
        _check_cost(cost)
        return await self._force(limit, key, -cost)

    async def _force(self, limit: Limit, key: str, cost: int) -> WindowStats:
        """Queue a signed `cost` for the next round of `_flush_debts`; its key's state after."""
        if not key:
            raise ValueError("rate-limit keys must be non-empty")
        debt = self._debts.get((limit, key))
        if debt is None:
            debt = self._debts[(limit, key)] = _Debt()
        debt.cost += cost
        future: asyncio.Future[WindowStats] = asyncio.get_running_loop().create_future()
        debt.waiters.append(future)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_debts(), name="ratelimit.consume")
        return await future

    async def _flush_debts(self) -> None:
        """Take the queued costs, one storage call per round, until none are left."""
        batch: list[tuple[Limit, str, _Debt]] = []
        try:
            while self._debts:
                debts, self._debts = self._debts, {}
                batch, keys = [], set()
                for (limit, key), debt in debts.items():
                    if key in keys:  # one key under two limits: the second waits a round
                        self._debts[(limit, key)] = debt
                    else:
                        keys.add(key)
                        batch.append((limit, key, debt))
                try:
                    decision = await self._decide(
                        [(limit, key, debt.cost) for limit, key, debt in batch], "force"
                    )
                except Exception as exc:
                    for _, _, debt in batch:
                        debt.settle(exc)
                    continue
                for (_, _, debt), stats in zip(batch, decision.stats, strict=True):
                    debt.settle(stats)
        except BaseException as exc:  # cancelled: nobody may wait forever
            for _, _, debt in batch:
                debt.settle(exc)
            for debt in self._debts.values():
                debt.settle(exc)
            self._debts.clear()
            raise
        finally:
            self._flusher = None

    async def clear(self, key: str) -> None:
        """Forget `key`: it starts again with a full burst."""
        await self.storage.clear(key)

    async def close(self) -> None:
        """Finish the queued `consume` calls, then close the storage."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        await self.storage.close()

    async def _decide(self, requests: Sequence[Request], mode: Mode) -> Decision:
        if not requests:
            return Decision(allowed=True, stats=[])
        cells: list[Cell] = []
        for limit, key, cost in requests:
            _check_cost(abs(cost) if mode == "force" else cost)  # force: refunds are negative
            if cost > limit.amount and mode != "force":
                raise RateLimitCostTooLarge(
                    f"A cost of {cost} can never fit a limit of {limit}.",
                    cost=cost,
                    limit=limit.amount,
                )
            cells.append(Cell(key, limit.increment_us(cost), limit.period_us))
        if len(cells) > 1:
            keys = {cell.key for cell in cells}
            if len(keys) != len(cells) or "" in keys:
                raise ValueError("rate-limit keys of one decision must be non-empty and distinct")
        elif not cells[0].key:
            raise ValueError("rate-limit keys must be non-empty")
        outcome = await self.storage.gcra(cells, mode)
        consumed = mode == "force" or (mode == "hit" and outcome.allowed)
        now = outcome.now_us
        stats: list[WindowStats] = []
        for (limit, _key, _cost), cell, tat in zip(requests, cells, outcome.tats_us, strict=True):
            after = max(now, tat + cell.increment_us) if consumed else tat  # refunds stop at now
            ahead = after - now
            retry_us = 0 if consumed else max(0, tat + cell.increment_us - now - cell.window_us)
            period, amount = limit.period_us, limit.amount
            remaining = max(0, (period - ahead) * amount // period)
            # ahead - period + ceil((remaining + 1) * period / amount), see the module docstring
            window_us = (
                0 if remaining >= amount else ahead - period - (-(remaining + 1) * period) // amount
            )
            stats.append(
                WindowStats(
                    limit=amount,
                    remaining=remaining,
                    reset_after_seconds=ahead / _US_PER_SECOND,
                    retry_after_seconds=retry_us / _US_PER_SECOND,
                    policy=limit,
                    effective_window_seconds=window_us / _US_PER_SECOND,
                )
            )
        return Decision(allowed=outcome.allowed, stats=stats)


def _check_cost(cost: object) -> None:
    """Raise ValueError unless `cost` is an int >= 0 (bool excluded)."""
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise ValueError(f"rate-limit cost must be an int >= 0, got {cost!r}")


def _with_allowed(decision: Decision) -> HitResult:
    stats = decision.stats[0]
    return HitResult(
        limit=stats.limit,
        remaining=stats.remaining,
        reset_after_seconds=stats.reset_after_seconds,
        retry_after_seconds=stats.retry_after_seconds,
        allowed=decision.allowed,
        policy=stats.policy,
        effective_window_seconds=stats.effective_window_seconds,
    )
