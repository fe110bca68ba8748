"""Rate-limit errors.

```
TollhouseError
└── RateLimitError (500 rate-limit-error)              base of this family, never raised itself
    ├── RateLimited (429 rate-limited)                 a request was denied; raised by callers
    │   │                                              through `Decision.raise_if_denied()`
    │   └── TooManyInFlight (429 in-flight-limit)      a subject's cap on requests under way
    │                                                  is reached (`concurrency`)
    ├── RateLimitStorageError (503 rate-limit-unavailable)
    │                                                  the backend (Redis) failed or is unreachable
    └── RateLimitCostTooLarge (422 rate-limit-cost-too-large)   also an `InvalidInput`
                                                       cost > limit.amount: can never pass
```

`RateLimitStorageError` is deliberately *not* a `RateLimited`: an outage is not the client's
fault, and `except RateLimited` must not turn a dead Redis into a 429. Whether a dead Redis
raises it at all is the storage's failure policy (`storage_from_url(..., on_failure=...)`, see
`storage.failover`): fail-closed raises it with `retry_after_seconds`, fail-open decides in
the process instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollhouse.errors import InvalidInput, TollhouseError


class RateLimitError(TollhouseError):
    """Base of every rate-limit error."""

    status, code, title = 500, "rate-limit-error", "Rate limit error"


class RateLimited(RateLimitError):
    """The request exceeds a rate limit; nothing was consumed.

    Extras (problem+json members): `retry_after_seconds` (int, ceil, >= 1: the wait after which
    the same request would pass), `limit` (int, the `amount` of the most restrictive window),
    `remaining` (int, its remaining cost units now), `reset_seconds` (int, ceil: seconds until
    that window is fully replenished). The same numbers go into the `Retry-After` and
    `RateLimit-*` headers (see `tollhouse.ratelimit.headers`).

    `headers` are the decision's header fields (`Decision.headers()`: every window's
    `RateLimit-Policy` and `RateLimit` items, the older `RateLimit-*` fields, `Retry-After`),
    sent with the 429 answer and not part of its body.
    """

    status, code, title = 429, "rate-limited", "Rate limit exceeded"

    def __init__(
        self, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail, **extra)
        self.headers = dict(headers or {})


class TooManyInFlight(RateLimited):
    """A subject already has its cap of requests under way; nothing was taken.

    Extras: `subject` (`api-key` or `customer`: whose cap), `limit` (int, the cap) and
    `retry_after_seconds` (1: a slot frees when any request of the subject ends, which no
    clock predicts).
    """

    status, code, title = 429, "in-flight-limit", "Too many requests in flight"


class RateLimitStorageError(RateLimitError):
    """The rate-limit backend failed (Redis down, timeout, script error); `backend` extra names it."""

    status, code, title = 503, "rate-limit-unavailable", "Rate limiting unavailable"


class RateLimitCostTooLarge(RateLimitError, InvalidInput):
    """A request's cost exceeds its limit's `amount`, so it could never pass, even after waiting.

    Extras: `cost` (int) and `limit` (int, the amount). Example: `max_tokens=50_000` against a
    40,000 tokens-per-minute limit.
    """

    status, code, title = 422, "rate-limit-cost-too-large", "Request larger than the rate limit"
