"""Where GCRA state lives: one integer per key, its theoretical arrival time (TAT).

A backend implements `Storage.gcra`, the whole check-and-act of one decision in one atomic
step, over integer microseconds:

    now      = the backend's clock (MemoryStorage: the injected Clock; Redis: server TIME)
    tat_i    = max(stored TAT of key i, now)                     (a missing key reads as now)
    conforms = tat_i + increment_i - now <= window_i   for every i
    mode "hit":   if all conform, store tat_i + increment_i for every i; else store nothing
    mode "test":  store nothing
    mode "force": store tat_i + increment_i for every i, conforming or not (debt); only
                  here may increment_i be negative (a refund): a result at or before `now`
                  drops the key

and returns `Outcome(allowed=all conform, now_us, tats_us=[tat_i ...])` (the TATs *before*
this call's increments, already raised to `now`). `strategies.py` turns those into
`WindowStats`. A stored TAT at or before `now` carries no information (it reads as `now`), so
backends may drop such keys (MemoryStorage prunes, Redis keys expire at their TAT).

A backend also keeps **in-flight slots** (`ratelimit.concurrency`): per key, the ids of the
requests under way, each with a lease that expires unless renewed. `take_slot` is the atomic
check-and-add over several keys (all or nothing), `give_slot` and `renew_slots` the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

from tollhouse.clock import Clock

Mode = Literal["hit", "test", "force"]
"""`hit`: all-or-nothing consume; `test`: check only; `force`: consume regardless (debt)."""

FailurePolicy = Literal["fail-closed", "fail-open"]
"""What decides while a shared backend is unreachable (`storage.failover`): nothing (503), or
this process alone."""


class Cell(NamedTuple):
    """One key of a decision, in backend units (a NamedTuple: built on every decision)."""

    key: str
    """The caller's key, without the backend namespace (Redis prefixes `th:rl:`)."""
    increment_us: int
    """cost * emission interval, in whole microseconds (rounded toward zero); >= 0, except
    in mode "force", where a negative increment refunds."""
    window_us: int
    """tolerance + emission interval = the limit's period, in microseconds, > 0."""


class Outcome(NamedTuple):
    """What a backend saw: see the module docstring."""

    allowed: bool
    now_us: int
    """Backend time, microseconds since the Unix epoch."""
    tats_us: list[int]
    """Per cell, max(stored TAT, now) before this call's increment; same order as the cells."""


class Slot(NamedTuple):
    """One subject's in-flight cap in a `take_slot`."""

    key: str
    """The caller's key, without the backend namespace."""
    cap: int
    """Most live entries the key may hold (>= 1)."""


class Storage(Protocol):
    """A GCRA backend. Implementations: `MemoryStorage`, `RedisStorage`."""

    async def gcra(self, cells: Sequence[Cell], mode: Mode) -> Outcome:
        """Run one atomic decision over `cells` (distinct keys, at least one).

        Raises:
            RateLimitStorageError: the backend failed; nothing is known to be consumed.
        """
        ...

    async def clear(self, key: str) -> None:
        """Forget `key` (an operator reset): its next request sees a full burst."""
        ...

    async def take_slot(self, slots: Sequence[Slot], member: str, lease_ms: int) -> int | None:
        """Atomically: drop each key's entries whose lease has passed; if every key holds
        fewer than its cap, add `member` to each with a lease of `lease_ms` and return None,
        else add nothing and return the index of the first full slot.

        Raises:
            RateLimitStorageError: the backend failed; nothing is known to be taken.
        """
        ...

    async def give_slot(self, keys: Sequence[str], member: str) -> None:
        """Remove `member` from each key (a missing one is no error).

        Raises:
            RateLimitStorageError: the backend failed (the entries expire with their lease).
        """
        ...

    async def renew_slots(self, held: Sequence[tuple[str, str]], lease_ms: int) -> None:
        """Extend to `lease_ms` from now the lease of each `(key, member)` still held.

        Raises:
            RateLimitStorageError: the backend failed.
        """
        ...

    async def close(self) -> None:
        """Release connections. The storage is unusable afterwards."""
        ...


def storage_from_url(
    url: str, *, clock: Clock | None = None, on_failure: FailurePolicy = "fail-closed"
) -> Storage:
    """Pick a backend from a URL.

    `memory://` -> `MemoryStorage(clock)`: one process only (the embedded default).
    `redis://host:port/db`, `rediss://...` (TLS), `unix://path?db=N` -> `RedisStorage(url)`:
    shared by every process; time comes from the Redis server. It is wrapped in a
    `FailoverStorage` that, while Redis is unreachable, refuses decisions at once
    (`on_failure="fail-closed"`: 503 with `Retry-After`) or makes them in this process
    (`"fail-open"`: a `MemoryStorage` on `clock`).

    Raises:
        ValueError: any other scheme.
    """
    scheme = url.partition("://")[0].lower()
    from tollhouse.ratelimit.storage.memory import MemoryStorage

    if scheme == "memory":
        return MemoryStorage(clock=clock)
    if scheme in ("redis", "rediss", "unix"):
        from tollhouse.ratelimit.storage.failover import FailoverStorage
        from tollhouse.ratelimit.storage.redis import RedisStorage

        fallback = MemoryStorage(clock=clock) if on_failure == "fail-open" else None
        return FailoverStorage(RedisStorage(url), fallback=fallback)
    raise ValueError(
        f"unsupported rate-limit storage URL scheme {scheme!r}: "
        "use memory://, redis://, rediss:// or unix://"
    )


__all__ = ["Cell", "FailurePolicy", "Mode", "Outcome", "Slot", "Storage", "storage_from_url"]
