"""In-flight caps: at most N requests of a subject under way at once, across processes.

```python
from tollhouse.ratelimit import Cap, InFlightLimiter

in_flight = InFlightLimiter(storage, lease_seconds=30.0)   # the rate limiter's storage
in_flight.start()                                          # renews the leases held here
lease = await in_flight.acquire([Cap("api-key", "key_1", 4), Cap("customer", "cus_1", 10)])
try:
    ...                                                    # serve the request
finally:
    await in_flight.release(lease)
```

Invariants:
- `acquire` is all or nothing over its caps, one atomic step of the storage (a Lua script on
  Redis, shared by every process; the event loop in memory): N concurrent acquires against a
  cap of C take exactly min(N, C) slots. A refusal (`TooManyInFlight`, 429, `Retry-After: 1`)
  takes nothing.
- A slot is an entry with a lease (`lease_seconds`), renewed every third of a lease by the
  process holding it while the request runs. `release` removes it at once (completion, a
  client gone mid-stream, an error); a process that dies stops renewing, and its slots free
  themselves one lease later at most.
- While Redis is unreachable the storage's failure policy applies (`storage.failover`):
  fail-closed refuses with 503, fail-open caps each process alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from tollhouse.ratelimit.errors import RateLimitStorageError, TooManyInFlight
from tollhouse.ratelimit.storage import Slot, Storage

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 30.0
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True, slots=True)
class Cap:
    """One subject's cap: `subject` names it in a refusal (`api-key`, `customer`), `key`
    identifies it in the storage, `limit` (>= 1) is how many requests may be under way."""

    subject: str
    key: str
    limit: int


@dataclass(frozen=True, slots=True)
class Lease:
    """The slots one request holds: its id in each subject's set."""

    keys: tuple[str, ...]
    member: str


class InFlightLimiter:
    """Caps on requests under way over a rate-limit `Storage` (memory or Redis)."""

    def __init__(self, storage: Storage, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be > 0")
        self.storage = storage
        self.lease_ms = max(1, round(lease_seconds * 1000))
        self._held: set[Lease] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def acquire(self, caps: Sequence[Cap]) -> Lease:
        """Take a slot under every cap, or none.

        Raises:
            TooManyInFlight: a cap is reached (429; `subject`, `limit`, `retry_after_seconds`).
            RateLimitStorageError: the storage failed (503, fail-closed).
        """
        member = secrets.token_hex(8)
        slots = [Slot(f"{cap.subject}:{cap.key}", cap.limit) for cap in caps]
        full = await self.storage.take_slot(slots, member, self.lease_ms)
        if full is not None:
            cap = caps[full]
            raise TooManyInFlight(
                f"this {cap.subject.replace('-', ' ')} already has {cap.limit} requests under "
                "way: retry when one has finished",
                subject=cap.subject,
                limit=cap.limit,
                retry_after_seconds=RETRY_AFTER_SECONDS,
            )
        lease = Lease(tuple(slot.key for slot in slots), member)
        self._held.add(lease)
        return lease

    async def release(self, lease: Lease) -> None:
        """Give the slots back now; a storage failure is logged (they expire with the lease)."""
        self._held.discard(lease)
        try:
            await self.storage.give_slot(lease.keys, lease.member)
        except RateLimitStorageError as exc:
            log.warning("in-flight slots not given back (they expire): %s", exc.detail)

    def start(self) -> None:
        """Renew the leases held here every third of a lease, until `close`."""
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_forever(), name="inflight.renew")

    async def close(self) -> None:
        """Stop renewing (the storage is closed by its owner)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def renew(self) -> None:
        """Extend every lease held here by a lease from now (one storage call)."""
        held = [(key, lease.member) for lease in self._held for key in lease.keys]
        if held:
            await self.storage.renew_slots(held, self.lease_ms)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await self.renew()
            except RateLimitStorageError as exc:
                log.warning("in-flight leases not renewed: %s", exc.detail)
