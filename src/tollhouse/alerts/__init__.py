"""Credit alerts: a per-customer low-credit threshold (an amount, or a percent of the latest
grant) that fires once per downward crossing of the available balance.

Invariants:
- `credits.low` is emitted when the balance falls below the threshold, `credits.depleted` when
  it reaches zero, each once per crossing: the stored state moves by a conditional update in
  the transaction that emits the events, so processes racing on one crossing emit once.
- Rising back above the threshold (or above zero) re-arms it, without an event.
- Setting a threshold starts from the current balance without an event.
- The gateway reads thresholds and states from memory (`gateway.credit_watch`); the balance
  it compares is the one its hold left (`available_after_micros`).

Imports: customers, ledger (reads), events, storage.
"""

from tollhouse.alerts import service
from tollhouse.alerts.models import AlertState
from tollhouse.alerts.service import AlertView

__all__ = ["AlertState", "AlertView", "service"]
