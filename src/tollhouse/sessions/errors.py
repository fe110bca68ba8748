"""Session errors.

```
TollhouseError
└── SessionsError (500 sessions-error)
    ├── SessionNotFound (404 session-not-found)   also a NotFound; session_id
    ├── SessionActive (409 session-active)        also a Conflict; product, session_id
    ├── SessionRequired (402 session-required)    product, price_micros, products
    ├── SessionEnded (402 session-ended)          session_id, reason, product, price_micros
    ├── SessionNotMetered (409 session-not-metered)  also a Conflict; session_id, kind
    ├── TierNotPriced (409 resource-tier-not-priced)  also a Conflict; tier, plan
    └── StartAbandoned (409 session-start-abandoned)  also a Conflict; hold_id, hold_status
```
An unknown product is the catalog's `SessionProductNotFound` (404), a tier the plan does not
offer its `ResourceTierNotInPlan` (403, naming the lowest plan that has it); a wallet that
cannot pay is the ledger's `InsufficientCredit` (402); a start or purchase key used for
something else is `IdempotencyKeyReused` (422).
"""

from __future__ import annotations

from tollhouse.errors import Conflict, NotFound, TollhouseError


class SessionsError(TollhouseError):
    """Base of the sessions domain's errors."""

    status, code, title = 500, "sessions-error", "Sessions error"


class SessionNotFound(NotFound, SessionsError):
    """No such session, or another customer's. Extra: `session_id`."""

    status, code, title = 404, "session-not-found", "Session not found"


class SessionActive(Conflict, SessionsError):
    """The customer already has an active session of the product. Extra: `product`,
    `session_id` (the active one)."""

    status, code, title = 409, "session-active", "A session of this product is active"


class SessionRequired(SessionsError):
    """The model may only be called inside an active session of a product that covers it,
    and the customer has none. Extra: `product` (the first such product), `price_micros`
    (its price), `products` (every product that would do), `model`."""

    status, code, title = 402, "session-required", "An active session is required"


class SessionEnded(SessionsError):
    """The customer's session of the product reached a cap (or was terminated) and no new
    one is active. Extra: `session_id`, `reason` (`tokens`, `duration`, `terminated`),
    `product`, `price_micros` (what a new one costs), `model`.

    Also the answer to a heartbeat of a metered session that has ended (its workload should
    stop): extra `session_id`, `reason` (`terminated`, `credit`, `heartbeat`, `lapsed`),
    `product`, `resource_tier`."""

    status, code, title = 402, "session-ended", "The session has ended"


class SessionNotMetered(Conflict, SessionsError):
    """A heartbeat for a flat session (only metered sessions take heartbeats). Extra:
    `session_id`, `kind`."""

    status, code, title = 409, "session-not-metered", "The session is not metered"


class TierNotPriced(Conflict, SessionsError):
    """The plan lists the resource tier but the catalog gives it no `session_rates` entry
    (an operator's catalog to fix: a rate of "0" makes it free). Extra: `tier`, `plan`."""

    status, code, title = 409, "resource-tier-not-priced", "Resource tier has no rate"


class StartAbandoned(Conflict, SessionsError):
    """A metered start replayed after its first hold was released (the start was cut off,
    and retried after the hold's expiry): start again with a new idempotency key. Extra:
    `hold_id`, `hold_status`."""

    status, code, title = 409, "session-start-abandoned", "The start was abandoned"
