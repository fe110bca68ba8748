"""Sessions: billed windows of use. Flat sessions are sold by the catalog's
`session_products`: a fixed fee for a duration or a token cap, whichever ends first.
Metered (compute) sessions run on a plan's resource tier, billed by the second at the plan's
hourly rate, paid through slice holds extended ahead of use (`service.metered`).

Invariants:
- Money is integer micros. A session's fee is paid when it starts: from the customer's
  oldest prepaid pack of the product with sessions left (the pack's price divided by its
  sessions, rounded down), else from the wallet through a ledger hold captured at the price
  (the hold's metadata names the session and product).
- At most one active session per customer and product (a unique constraint).
- Starts and pack purchases are idempotent by a key unique per customer: a replay answers
  the first result and charges nothing; the key for something else is 409.
- A session past its `expires_at` is ended (reason `duration`, at `expires_at`) by the next
  read or start; `session.started` and `session.ended` events are written in the same
  transaction as the change they describe.
- Service functions never commit, except `start` and `buy_pack`, which run short
  transactions of their own around the ledger writer's calls (so do the metered ones that
  take the `Database`: `start_metered`, `heartbeat`, `stop`, `settle`, `reap`, `tick`).
- A metered session is billed once: `ceil(ceil(seconds) * rate / 3600)` micros of its whole
  run (`billing`), decided in the one transaction that ends it (a conditional update, so
  concurrent stops and reapers end it once), never more than its holds; each slice hold is
  then captured at its share, earliest first, and the rest released (`service.settle`).
"""

from tollhouse.sessions.errors import (
    SessionActive,
    SessionEnded,
    SessionNotFound,
    SessionNotMetered,
    SessionRequired,
    SessionsError,
    StartAbandoned,
    TierNotPriced,
)
from tollhouse.sessions.models import EndReason, PaidWith, SessionKind, SessionStatus
from tollhouse.sessions.schemas import (
    Bought,
    Estimate,
    PackView,
    Quota,
    ReapReport,
    SessionView,
    Started,
)

__all__ = [
    "Bought",
    "EndReason",
    "Estimate",
    "PackView",
    "PaidWith",
    "Quota",
    "ReapReport",
    "SessionActive",
    "SessionEnded",
    "SessionKind",
    "SessionNotFound",
    "SessionNotMetered",
    "SessionRequired",
    "SessionStatus",
    "SessionView",
    "SessionsError",
    "StartAbandoned",
    "Started",
    "TierNotPriced",
]
