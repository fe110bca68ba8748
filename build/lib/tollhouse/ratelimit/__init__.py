"""Rate limits: GCRA over memory (one process) or Redis (many processes).

```python
from tollhouse.ratelimit import Limit, RateLimiter, storage_from_url

limiter = RateLimiter(storage_from_url("redis://127.0.0.1:6379/0"))
decision = await limiter.hit_all([
    (Limit.per_minute(60, "text-rpm"), "cus_1:text:rpm", 1),
    (Limit.per_minute(40_000, "text-tpm"), "cus_1:text:tpm", estimated_tokens),
])
decision.raise_if_denied()                       # RateLimited (429) with retry/limit extras
response.headers.update(decision.headers())      # RateLimit(-Policy), RateLimit-*, Retry-After
...
await limiter.consume(Limit.per_minute(40_000, "text-tpm"), "cus_1:text:tpm", extra_tokens)
await limiter.refund(Limit.per_minute(40_000, "text-tpm"), "cus_1:text:tpm", unused_tokens)
```

Invariants:
- A decision is atomic and all-or-nothing: every (limit, key, cost) of a `hit_all` is consumed,
  or none is. With Redis it is one Lua script run (one round trip, shared by the decisions a
  process makes while its previous call is under way) using the server's clock, so N
  processes together allow what one would, never N times the limit.
- `Limit(amount, period)`: from an idle key exactly `amount` cost units pass at once, then one
  per `period / amount` (GCRA, see `strategies`). State is one TAT per key; a key whose TAT is in
  the past is indistinguishable from a missing one and is dropped (memory: pruning; Redis: PEXPIRE).
- `consume` always takes its cost (may exceed `amount`): the key runs into debt and later
  requests wait it off; `refund` gives back what was taken, never moving a key before now.
  `hit`/`hit_all` refuse a cost > amount (`RateLimitCostTooLarge`, 422).
- Backend failures surface only as `RateLimitStorageError` (503); nothing else leaks out of
  the Redis client. While Redis is down, decisions are refused at once (fail-closed) or made
  in the process (fail-open), per `storage_from_url(..., on_failure=...)`.
- In-flight caps (`concurrency.InFlightLimiter`) share the storage: at most N requests of a
  subject under way at once, each slot leased and renewed while its request runs.
- This package imports only `tollhouse.errors` and `tollhouse.clock` from tollhouse.
"""

from __future__ import annotations

from tollhouse.ratelimit.concurrency import Cap, InFlightLimiter, Lease
from tollhouse.ratelimit.errors import (
    RateLimitCostTooLarge,
    RateLimited,
    RateLimitError,
    RateLimitStorageError,
    TooManyInFlight,
)
from tollhouse.ratelimit.fields import headers, most_restrictive, retry_after_header_seconds
from tollhouse.ratelimit.storage import Cell, Mode, Outcome, Storage, storage_from_url
from tollhouse.ratelimit.storage.memory import MemoryStorage
from tollhouse.ratelimit.strategies import (
    Decision,
    HitResult,
    Limit,
    RateLimiter,
    Request,
    WindowStats,
    key_for,
)

__all__ = [
    "Cap",
    "Cell",
    "Decision",
    "HitResult",
    "InFlightLimiter",
    "Lease",
    "Limit",
    "MemoryStorage",
    "Mode",
    "Outcome",
    "RateLimitCostTooLarge",
    "RateLimitError",
    "RateLimitStorageError",
    "RateLimited",
    "RateLimiter",
    "Request",
    "Storage",
    "TooManyInFlight",
    "WindowStats",
    "headers",
    "key_for",
    "most_restrictive",
    "retry_after_header_seconds",
    "storage_from_url",
]
