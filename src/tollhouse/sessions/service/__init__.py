"""Flat sessions: start (paid from a prepaid pack first, else from the wallet), read, end,
and buy session packs.

Money moves through the ledger writer, which commits on its own connection (SQLite has one),
so `start` and `buy_pack` take the `Database` and run their own short transactions around the
ledger calls; every other function takes the caller's `AsyncSession` and never commits.

Idempotency: a start or a purchase names an idempotency key, unique per customer. The same
key again answers the first session or pack (`replayed`), charging nothing more; the same key
for another product (or pack size) is `IdempotencyKeyReused`. The wallet is charged by a hold
whose own idempotency key is derived from the caller's (`session:<key>`, `session-pack:<key>`)
and whose metadata carries the session or pack id and the product, so a retry after a crash
finds the same hold, the same id, and captures it once.

Order of a wallet-paid start: hold the price (nothing is spent if the wallet cannot cover
it), commit the session row, capture the hold at the price. Two starts of one product racing
with different keys: the unique `(customer_id, active_product)` lets one commit; the other's
hold is voided and it answers `SessionActive`. Bound on unpaid use: a process that dies
between the session's commit and the capture (one ledger round trip) leaves the hold open;
the next reaper pass (`reaper.reap`, in every `serve`) captures it at the fee, and so does
replaying the start (before the hold's expiry, the session's own).

A pack purchase holds and captures the price first, then writes the pack (a retry after a
crash replays the captured hold and writes the pack once).

Caps end sessions lazily: every read and start first ends the customer's active sessions
whose `expires_at` passed (ended at `expires_at`, reason `duration`) or whose usage events
count `token_cap` tokens or more (reason `tokens`), in the caller's transaction, with their
`session.ended` events. A session's tokens are the sum of its customer's `input_tokens` and
`output_tokens` usage events carrying its id (`metering.service.session_tokens`): exact, and
idempotent with the usage events. The gateway refuses calls from memory before that
(`gateway.session_guard`).

Metered (compute) sessions, billed by the second on a resource tier: `estimate`,
`start_metered`, `heartbeat` (`metered`), `stop` for either kind (`settle`), and the reaper
and extender `reap` / `tick` (`reaper`); their design, crash safety and bound on unpaid
running time are in `metered`'s docstring, the billing rule in `sessions.billing`.
"""

from tollhouse.sessions.service.lifecycle import (
    MAX_PAGE,
    end_finished,
    get,
    list_sessions,
    not_found,
    terminate,
)
from tollhouse.sessions.service.live import FlatSessions, flat_sessions
from tollhouse.sessions.service.metered import (
    HOLD_GRACE_SECONDS,
    estimate,
    heartbeat,
    start_metered,
)
from tollhouse.sessions.service.packs import PACK_HOLD_PREFIX, buy_pack, quota
from tollhouse.sessions.service.purchases import Purchase, wallet_purchases
from tollhouse.sessions.service.reaper import reap, tick
from tollhouse.sessions.service.settle import SLICE_HOLD_PREFIX, settle, stop
from tollhouse.sessions.service.starts import SESSION_HOLD_PREFIX, start
from tollhouse.sessions.service.stats import started_per_day

__all__ = [
    "HOLD_GRACE_SECONDS",
    "MAX_PAGE",
    "PACK_HOLD_PREFIX",
    "SESSION_HOLD_PREFIX",
    "SLICE_HOLD_PREFIX",
    "FlatSessions",
    "Purchase",
    "buy_pack",
    "end_finished",
    "estimate",
    "flat_sessions",
    "get",
    "heartbeat",
    "list_sessions",
    "not_found",
    "quota",
    "reap",
    "settle",
    "start",
    "start_metered",
    "started_per_day",
    "stop",
    "terminate",
    "tick",
    "wallet_purchases",
]
