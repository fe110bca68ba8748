"""A shared backend that may be unreachable (Redis), and what decides while it is.

`FailoverStorage(primary, fallback)` passes every decision to `primary` while it answers. When
a call fails (`RateLimitStorageError`), the primary is marked down for `retry_interval_seconds`
(1 s), and meanwhile every decision, at once and without waiting on a dead server:

- fail-open (`fallback` given, a `MemoryStorage`): is decided by the fallback, in this process
  only. N processes together then allow up to N times a limit, and the fallback starts empty
  (a full burst); what it consumed is not carried over to the primary;
- fail-closed (`fallback=None`): raises `RateLimitStorageError` (503) with
  `retry_after_seconds=1`, so the answer carries `Retry-After: 1`.

After the interval the next decision tries the primary again (decisions made meanwhile keep
the outage behaviour), and its first success ends the outage. The primary's client reconnects
by itself (redis-py opens a new connection per attempt; `RedisStorage` reloads its script
after a Redis restart), so a process started while Redis is down attaches when it comes up.

One warning is logged when an outage starts and one when it ends, however many calls meet it.
The interval is measured on the monotonic clock, not the injectable `Clock` (a frozen test
clock would never let it pass); pass `monotonic` to drive it in tests.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from tollhouse.ratelimit.errors import RateLimitStorageError
from tollhouse.ratelimit.storage import Cell, Mode, Outcome, Slot, Storage

T = TypeVar("T")

log = logging.getLogger(__name__)

RETRY_INTERVAL_SECONDS = 1.0
"""How long a failed primary is left alone before the next decision tries it again."""


class FailoverStorage:
    """`Storage` over `primary`, failing open to `fallback` or closed (503) while it is down."""

    def __init__(
        self,
        primary: Storage,
        *,
        fallback: Storage | None,
        name: str = "redis",
        retry_interval_seconds: float = RETRY_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = name
        self.retry_interval_seconds = retry_interval_seconds
        self._monotonic = monotonic
        self._down_until: float | None = None
        """While the primary is down: when the next decision may try it again."""

    @property
    def is_down(self) -> bool:
        """Whether the primary's last call failed (and no call has succeeded since)."""
        return self._down_until is not None

    async def gcra(self, cells: Sequence[Cell], mode: Mode) -> Outcome:
        """See `Storage.gcra`: the primary's outcome, or the outage behaviour (module docstring).

        Raises:
            RateLimitStorageError: fail-closed, while the primary is down (`retry_after_seconds`).
        """
        return await self._call(lambda storage: storage.gcra(cells, mode))

    async def take_slot(self, slots: Sequence[Slot], member: str, lease_ms: int) -> int | None:
        """See `Storage.take_slot`, with the outage behaviour of `gcra`."""
        return await self._call(lambda storage: storage.take_slot(slots, member, lease_ms))

    async def give_slot(self, keys: Sequence[str], member: str) -> None:
        """See `Storage.give_slot`: in the fallback (where an outage may have taken it), then
        in the primary as `gcra` would reach it."""
        if self.fallback is not None:
            await self.fallback.give_slot(keys, member)
        await self._call(lambda storage: storage.give_slot(keys, member))

    async def renew_slots(self, held: Sequence[tuple[str, str]], lease_ms: int) -> None:
        """See `Storage.renew_slots`, in the fallback too."""
        if self.fallback is not None:
            await self.fallback.renew_slots(held, lease_ms)
        await self._call(lambda storage: storage.renew_slots(held, lease_ms))

    async def _call(self, op: Callable[[Storage], Awaitable[T]]) -> T:
        """`op(primary)`, or while it is down `op(fallback)` / `RateLimitStorageError`."""
        down_until = self._down_until
        if down_until is not None and self._monotonic() < down_until:
            return await self._meanwhile(op, None)
        try:
            result = await op(self.primary)
        except RateLimitStorageError as exc:
            self._went_down(exc)
            return await self._meanwhile(op, exc)
        if self._down_until is not None:
            self._down_until = None
            log.warning("rate-limit storage (%s) answers again: limits are shared again", self.name)
        return result

    def _went_down(self, error: RateLimitStorageError) -> None:
        if self._down_until is None:
            meanwhile = (
                "deciding in this process only (fail-open)"
                if self.fallback is not None
                else "refusing rate-limited calls with 503 (fail-closed)"
            )
            log.warning(
                "rate-limit storage (%s) unreachable (%s): %s until it answers again",
                self.name,
                error.detail,
                meanwhile,
            )
        self._down_until = self._monotonic() + self.retry_interval_seconds

    async def _meanwhile(
        self, op: Callable[[Storage], Awaitable[T]], cause: RateLimitStorageError | None
    ) -> T:
        if self.fallback is not None:
            return await op(self.fallback)
        raise RateLimitStorageError(
            f"rate limiting is unavailable ({self.name} does not answer); retry shortly",
            backend=self.name,
            retry_after_seconds=max(1, math.ceil(self.retry_interval_seconds)),
        ) from cause

    async def clear(self, key: str) -> None:
        """Forget `key` in the fallback, then in the primary.

        Raises:
            RateLimitStorageError: the primary failed.
        """
        if self.fallback is not None:
            await self.fallback.clear(key)
        await self.primary.clear(key)

    async def close(self) -> None:
        await self.primary.close()
        if self.fallback is not None:
            await self.fallback.close()
