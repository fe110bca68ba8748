"""The credit ledger: double-entry wallets in integer micros, grants, two-phase charges.

Invariants (checked by `service.check_invariants`):
- Every movement is a transfer: exactly two entries sharing a `transfer_id`, summing to zero.
  Entries are append-only (never updated, never deleted); balances over all accounts sum to 0.
- An account's `balance` always equals the sum of its entries (a cached projection).
- A grant is a lot account funded issuance -> lot (a paid grant: payments -> lot). Lots and
  escrow never go below 0; the overdraft account never goes below -limit through a draw; so a
  wallet never goes below zero unless an overdraft is configured, also with many writers in
  several processes (row locks). A reversal (a refund) moves a lot's rest back to its funder.
- A customer's escrow balance equals the sum of its open holds; a hold's allocations sum to its
  amount; a settled hold moved `captured_amount` to revenue and the rest back to its lots.
- Holds, captures, voids and grants are idempotent (hold/grant by the caller's key, capture and
  void by the hold's state; a reversal by its key and lot); a failed operation stores nothing.
- Every answer from the writer is durable: it is given after the COMMIT that stored it, on
  every store and for every operation, gateway holds included (a call is served only on a hold
  that is stored). A capture that fails for a transient reason is retried until it is stored
  (`gateway.settle`), never dropped.

Writes: `Ledger` (one per process; group commit). Reads: `tollhouse.ledger.service`.
On SQLite the `Ledger` is the database's only writer: it keeps accounts cached across batches
and runs hot batches whole on the driver's thread (`writer/cached.py`, checked against
`PRAGMA data_version`). On PostgreSQL several processes write one database: batches of holds,
captures and voids are one statement that checks each customer's escrow version and balance
itself (`writer/cached_postgres.py`); everything else reads under row locks (`writer/load.py`).
"""

from tollhouse.ledger.errors import (
    CaptureExceedsHold,
    GrantNotFound,
    HoldNotFound,
    HoldNotOpen,
    IdempotencyKeyReused,
    InsufficientCredit,
    LedgerClosed,
    LedgerError,
)
from tollhouse.ledger.models import AccountKind, EntryKind, GrantSource, HoldStatus
from tollhouse.ledger.schemas import (
    Balance,
    GrantView,
    HoldView,
    ReversalView,
    SweepResult,
    TransactionView,
)
from tollhouse.ledger.writer import Ledger

__all__ = [
    "AccountKind",
    "Balance",
    "CaptureExceedsHold",
    "EntryKind",
    "GrantNotFound",
    "GrantSource",
    "GrantView",
    "HoldNotFound",
    "HoldNotOpen",
    "HoldStatus",
    "HoldView",
    "IdempotencyKeyReused",
    "InsufficientCredit",
    "Ledger",
    "LedgerClosed",
    "LedgerError",
    "ReversalView",
    "SweepResult",
    "TransactionView",
]
