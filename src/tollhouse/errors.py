"""The error tree. Every failure a caller can act on is a `TollhouseError` subclass.

Each class carries the HTTP `status` it maps to and a stable `code`; only `api/problems.py`
(and the gateway's OpenAI-shaped variant of it) turns them into responses, as RFC 9457
problem+json with `type = https://tollhouse.dev/problems/<code>`.

```
TollhouseError (500 internal)
├── BadRequest (400 bad-request)
│   ├── InvalidInput (422 invalid-input)
│   └── IdempotencyKeyReused (422 idempotency-key-reused)  same key, other arguments: `fields`
├── Unauthenticated (401 unauthenticated)
├── Forbidden (403 forbidden)
├── NotFound (404 not-found)
├── Conflict (409 conflict)
├── PayloadTooLarge (413 payload-too-large)
├── DatabaseUnavailable (503 database-unavailable)  unreachable, restarting, timed out
├── CatalogError          catalog/errors.py        invalid catalog, unknown model/plan, not in plan
├── CustomersError        customers/errors.py      unknown or duplicate customer
├── KeysError             keys/errors.py           malformed/invalid key (401), scope (403)
├── RateLimitError        ratelimit/errors.py      rate-limited (429), storage unavailable (503)
├── MeteringError         metering/errors.py       invalid usage event or query (422)
├── LedgerError           ledger/errors.py         insufficient credit (402), hold states (404/409)
├── SubscriptionError     subscriptions/errors.py  quota exceeded (429), plan changes (409)
├── PaymentsError         payments/errors.py       not configured (503), payment method (402)
├── GatewayError          gateway/errors.py        upstream error (502), timeout (504)
├── WebhooksError         webhooks/errors.py       unknown endpoint/delivery (404), disabled (409)
└── NotReady              server/errors.py         `/ready`: a dependency is not ready (503)
```
Each domain's `errors.py` holds the rest of its branch; domain errors also subclass the
generic class whose status they share (a `CustomerNotFound` is a `NotFound`).
```
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE_URI = "https://tollhouse.dev/problems/"

PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})
"""RFC 9457's own members: an error's extras never take these names (domain state such as a
hold's status goes in a member of its own, e.g. `hold_status`)."""


class TollhouseError(Exception):
    """Base of every error tollhouse raises on purpose.

    `detail` is a human sentence about this occurrence; `extra` are machine-readable
    members added to the problem body (e.g. `balance_micros`, `retry_after_seconds`).
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        clash = PROBLEM_MEMBERS.intersection(extra)
        if clash:
            raise ValueError(f"problem extras may not be named {sorted(clash)}")
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        """The problem `type` URI: stable, one per class."""
        return PROBLEM_BASE_URI + self.code

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 body: `type`, `title`, `status`, `detail`, `instance` and the extras."""
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(TollhouseError):
    status, code, title = 400, "bad-request", "Bad request"


class InvalidInput(BadRequest):
    """Well-formed but invalid input; `errors` lists `{loc, msg}` per offending field."""

    status, code, title = 422, "invalid-input", "Invalid input"


class Unauthenticated(TollhouseError):
    status, code, title = 401, "unauthenticated", "Missing or invalid API key"


class Forbidden(TollhouseError):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(TollhouseError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(TollhouseError):
    status, code, title = 409, "conflict", "Conflict with the current state"


class IdempotencyKeyReused(BadRequest):
    """An idempotency key came back with other arguments than its first use; `fields` names
    the arguments that differ. A replay with the same arguments is answered with the first
    result instead.

    422, as the IETF draft "The Idempotency-Key HTTP Header Field"
    (draft-ietf-httpapi-idempotency-key-header, section 2.7 "Error Scenarios") answers a key
    reused with a different request payload. (Its 409, for a key whose first request is still
    being processed, is not used: a concurrent duplicate of a grant, hold or usage event waits
    for the first and is answered with its result, as `tests/e2e/test_load_idempotency.py`
    checks across processes.)"""

    status, code, title = 422, "idempotency-key-reused", "Idempotency key reused"


class PayloadTooLarge(TollhouseError):
    status, code, title = 413, "payload-too-large", "Request body too large"


class DatabaseUnavailable(TollhouseError):
    """The database did not answer (unreachable, restarting, a connection cut, a connect or
    statement timeout): nothing of the request was committed, unless `detail` says the
    outcome is unknown (a connection cut during a write; see README "Faults"). Extra:
    `retry_after_seconds`. Made by `storage.outage.unavailable` from the driver's error."""

    status, code, title = 503, "database-unavailable", "Database unavailable"
