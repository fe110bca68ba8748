"""The ledger's errors. Invalid arguments raise the ground `InvalidInput` (422) instead.

```
TollhouseError
└── LedgerError (500 ledger-error)
    ├── InsufficientCredit (402 insufficient-credit)   extras: balance_micros, required_micros,
    │                                                          overdraft_available_micros, currency
    ├── HoldNotFound (404 hold-not-found)              unknown id, or another customer's hold
    ├── GrantNotFound (404 grant-not-found)            unknown id, or another customer's grant
    ├── HoldNotOpen (409 hold-not-open)                extras: hold_id, hold_status
    ├── CaptureExceedsHold (409 capture-exceeds-hold)  extras: hold_id, hold_micros, capture_micros
    ├── IdempotencyKeyReused (422 idempotency-key-reused)  also the ground one: same key,
    │                                                  other arguments (extras: fields, ...)
    └── LedgerClosed (503 ledger-closed)               the writer was stopped
```
"""

from __future__ import annotations

from tollhouse import errors
from tollhouse.errors import TollhouseError


class LedgerError(TollhouseError):
    """Base of the ledger's errors."""

    status, code, title = 500, "ledger-error", "Ledger error"


class InsufficientCredit(LedgerError):
    """The wallet (live grants plus unused overdraft) cannot cover a hold. Nothing was stored."""

    status, code, title = 402, "insufficient-credit", "Insufficient credit"


class HoldNotFound(LedgerError):
    status, code, title = 404, "hold-not-found", "Hold not found"


class GrantNotFound(LedgerError):
    status, code, title = 404, "grant-not-found", "Grant not found"


class HoldNotOpen(LedgerError):
    """The hold was already settled differently (voided, expired, or captured at another amount)."""

    status, code, title = 409, "hold-not-open", "Hold is not open"


class CaptureExceedsHold(LedgerError):
    status, code, title = 409, "capture-exceeds-hold", "Capture exceeds the hold"


class IdempotencyKeyReused(errors.IdempotencyKeyReused, LedgerError):
    """A grant's or hold's idempotency key came back with other arguments than its first use;
    `fields` names them (422: see the ground class)."""

    status, code, title = 422, "idempotency-key-reused", "Idempotency key reused"


class LedgerClosed(LedgerError):
    """The ledger writer was stopped; no more operations are accepted."""

    status, code, title = 503, "ledger-closed", "Ledger unavailable"
